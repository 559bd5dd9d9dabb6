"""Time knowledge A/B on the benchmark (the Knowledge tab's panel, `/knowledge_ab`): an edit to the test split's
S / U / HM / ZSL and per-class changes, against the budget of an edit (under 0.5 s on 2 cores).

The test split is synthesised at UCF-GZSL's size (the cls split's stage-2 test: 555 videos of 42 seen classes and
1267 of 6 unseen ones, from AVCA's class-split CSVs), since the bundled demo checkpoint's synthetic split is small:

* the comparison alone (one distance matrix and the per-class changes) after one class row changed, at CLIP's
  512 dimensions, with 2 torch threads;
* what a visitor waits for: the bundled demo checkpoint's real text encoder (all-MiniLM-L6-v2) encoding one
  edited description (`session.edit`), then the comparison on a UCF-sized split in its 384 dimensions;
* against the same-run baseline of that edit without the comparison, and the demo's own (small) split.

Prints figures (bench/record.py: each beside its same-run baseline) and whether each is within budget; asserts
nothing.

    python bench/bench_knowledge_ab.py [--edits 20]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from record import at_most, figure, quick

from kda.checkpoint import TestSplit
from kda.knowledge_ab import KnowledgeAB
from kda.prediction import Candidates
from kda.studio import Studio

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "checkpoints" / "demo-ucf-cls"
UCF_SEEN, UCF_SEEN_VIDEOS, UCF_UNSEEN, UCF_UNSEEN_VIDEOS = 42, 555, 6, 1267  # UCF-GZSL cls stage-2 test
BUDGET_EDIT = at_most(0.5, "s")  # README.md "Budgets" (CPU, 2 cores): an edit -> updated results


def ucf_sized_split(class_matrix: np.ndarray, seen: np.ndarray, seed: int = 0) -> TestSplit:
    """UCF-GZSL's test videos (555 of seen classes, 1267 of unseen ones), each near its class row."""
    rng = np.random.default_rng(seed)
    seen_labels = rng.choice(np.flatnonzero(seen), UCF_SEEN_VIDEOS)
    unseen_labels = rng.choice(np.flatnonzero(~seen), UCF_UNSEEN_VIDEOS)
    labels = np.concatenate([seen_labels, unseen_labels])
    rho = class_matrix[labels] + 0.05 * rng.normal(size=(len(labels), class_matrix.shape[1]))
    return TestSplit(rho.astype(np.float16), labels, [f"v{i}" for i in range(len(labels))])


def timings(function, repeat: int) -> list[float]:
    out = []
    for i in range(repeat):
        start = time.perf_counter()
        function(i)
        out.append(time.perf_counter() - start)
    return out


def comparison_alone(edits: int) -> None:
    rng = np.random.default_rng(1)
    classes = UCF_SEEN + UCF_UNSEEN
    matrix = rng.normal(size=(classes, 512)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    ids = [f"class{i}" for i in range(classes)]
    seen = np.arange(classes) < UCF_SEEN
    base = Candidates(ids, ids, seen, matrix)
    split = ucf_sized_split(matrix, seen)
    start = time.perf_counter()
    ab = KnowledgeAB(split, ids, base, beta=0.1)
    scored_once = time.perf_counter() - start

    def edit(i: int) -> None:
        edited = matrix.copy()
        edited[i % classes] = matrix[(i + 1) % classes]  # a class described like another: videos move
        ab.compare(Candidates(ids, ids, seen, edited), [ids[i % classes]])

    figure(
        "knowledge A/B after one class row changed (UCF-sized split: 1,822 videos, 48 classes, 512-d)",
        timings(edit, edits),
        "s",
        baseline=scored_once,
        baseline_what="scoring the split under the checkpoint's knowledge, once",
        budget=BUDGET_EDIT,
    )


def real_edits(edits: int) -> None:
    if not DEMO.is_dir():
        print(f"no demo checkpoint at {DEMO}: run `make checkpoint`")
        return
    studio = Studio.load(DEMO)
    session = studio.new_session()
    class_id = session.class_ids[0]
    texts = [d.text for d in session.entry(class_id).descriptions]

    def edit(i: int) -> None:
        session.edit(class_id, [f"{texts[0]} Edit number {i} of this description.", *texts[1:]])

    def edit_and_compare(i: int) -> None:
        edit(i + edits)  # never a text encoded before
        studio.compare_knowledge(session)

    edit(-1)  # the encoder's first call warms it up: not what an edit costs
    alone = timings(edit, edits)
    what = "the same edit without the A/B (MiniLM encodes one description)"
    demo_videos = len(studio.ab)
    timed = timings(edit_and_compare, edits)
    figure(f"edit + knowledge A/B on the demo's own split ({demo_videos} videos)", timed, "s", alone, what, BUDGET_EDIT)
    ckpt = studio.checkpoint
    split = ucf_sized_split(ckpt.class_matrix, ckpt.seen_mask)
    studio.ab = KnowledgeAB(split, ckpt.class_ids, studio.base.candidates(), ckpt.beta)
    timed = timings(lambda i: edit_and_compare(i + 2 * edits), edits)
    figure("edit + knowledge A/B on a UCF-sized split (1,822 videos, 384-d)", timed, "s", alone, what, BUDGET_EDIT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=20, help="edits timed per figure")
    parser.add_argument("--quick", action="store_true", help="3 edits per figure")
    args = parser.parse_args()
    edits = 3 if quick() else args.edits
    torch.set_num_threads(2)  # the budget's 2 cores
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"torch threads: {torch.get_num_threads()}; load average of this machine: {load} (other work slows figures)")
    comparison_alone(edits)
    real_edits(edits)


if __name__ == "__main__":
    main()
