"""What a person waits for in the app, measured through the library (`kda.studio.Studio`), each figure against a
baseline from the same run (bench/record.py):

* classify a 10 s 360p clip (made here with ffmpeg) per backbone on offline weights, the bundled demo checkpoint
  for C3D + VGGish (cls) and the same classes and knowledge on a CLIP-frame network (clip): cold (the first call
  in a fresh process, which builds the backbones; not in --quick) and warm, against decoding the same inputs
  without networks;
* edit one class's descriptions -> new prediction, against re-encoding every class (same encoder);
* the four embedding maps of the reference sample (t-SNE and PCA), cached against the first call.

    python bench/bench_studio.py [--quick]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from record import at_most, figure, peak_memory, quick  # noqa: E402

from kda.knowledge.class_matrix import ClassMatrixBuilder  # noqa: E402
from kda.studio import Studio  # noqa: E402

DEMO = ROOT / "checkpoints" / "demo-ucf-cls"
BACKBONES = ("cls", "clip")
BUDGET_CLASSIFY_S, BUDGET_EDIT_S = 3.0, 0.5  # README.md "Budgets"

# A fresh process: load the studio (untimed), then time its first classification or first decode only.
COLD = """
import json, sys, time
sys.path.insert(0, sys.argv[1] + "/bench")
from bench_studio import studio_for
from kda.media.pipeline import video_inputs
studio = studio_for(sys.argv[2])
start = time.perf_counter()
if sys.argv[4] == "classify":
    studio.classify(sys.argv[3])
else:
    list(video_inputs(sys.argv[3], studio.extractor.options))
print(json.dumps(time.perf_counter() - start))
"""


def studio_for(backbone: str) -> Studio:
    """The demo checkpoint as it ships (cls), or its classes and knowledge on a seeded CLIP-frame network (clip)."""
    if backbone == "cls":
        return Studio.load(DEMO)
    import dataclasses

    import numpy as np
    import torch

    from kda.checkpoint import load_checkpoint
    from kda.model import KDAModel
    from kda.settings import get_setting

    demo = load_checkpoint(DEMO)
    torch.manual_seed(0)
    model = KDAModel(get_setting("clip").model_config(embed_dim=demo.class_matrix.shape[1]))
    rng = np.random.default_rng(0)
    model.fit_input_norm(rng.random((16, 128)) * 255, rng.normal(size=(16, 512)))
    return Studio(dataclasses.replace(demo, model=model, setting="clip", feature_weights="offline", samples=None))


def timed(fn, repeat: int = 1) -> tuple[list[float], object]:
    """(seconds of each of `repeat` calls, last result)."""
    runs, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - start)
    return runs, result


def make_clip(folder: Path) -> Path:
    path = folder / "clip_10s_360p.mp4"
    source = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=10"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=10"]
    codecs = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *source, *tone, *codecs, str(path)], check=True)
    return path


def cold(backbone: str, clip: Path, what: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", COLD, str(ROOT), backbone, str(clip), what],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_classify(backbone: str, clip: Path, repeat: int) -> None:
    from kda.media.pipeline import video_inputs

    studio = studio_for(backbone)
    studio.classify(clip)  # untimed: the networks are built once
    with peak_memory() as peak:
        warm, prediction = timed(lambda: studio.classify(clip), repeat)
    decode, _ = timed(lambda: list(video_inputs(clip, studio.extractor.options)), repeat)
    cap = f", C3D cap {studio.max_clips}" if backbone == "cls" else ""
    what = f"classify 10 s 360p clip, {backbone} ({studio.weights} weights{cap})"
    budget = at_most(BUDGET_CLASSIFY_S, "s")
    if not quick():  # two fresh processes per backbone: a minute on 2 busy cores
        first, first_decode = cold(backbone, clip, "classify"), cold(backbone, clip, "decode")
        figure(f"{what}, cold", first, "s", baseline=first_decode, baseline_what="decoding its inputs, fresh process",
               budget=budget, note="first call in a fresh process: builds the backbones")  # fmt: skip
    figure(f"{what}, warm", warm, "s", baseline=decode, baseline_what="decoding its inputs, no networks",
           budget=budget, peak_mib=peak.mib, note="; ".join(n.message for n in prediction.notes))  # fmt: skip


def bench_edit(studio: Studio, repeat: int) -> None:
    session = studio.new_session()
    entry = session.entry("ApplyLipstick")
    texts = [d.text for d in entry.descriptions]
    count = [0]

    def edit_and_predict():
        count[0] += 1
        texts[1] = f"A person paints their lips with colour, take {count[0]}."
        session.edit("ApplyLipstick", texts)
        return studio.classify_sample(0, session)

    def re_encode_all_and_predict():
        fresh = ClassMatrixBuilder(studio.builder.encoder, studio.builder.form)  # every text encoded again
        fresh.rows(session.knowledge)
        return studio.classify_sample(0, session)

    incremental, _ = timed(edit_and_predict, repeat)
    everything, _ = timed(re_encode_all_and_predict, max(repeat // 2, 1))
    texts_total = sum(len(session.knowledge.texts(c)) for c in session.class_ids)
    figure("edit one class -> new prediction (library)", incremental, "s", baseline=everything,
           baseline_what=f"re-encoding all {texts_total} texts", budget=at_most(BUDGET_EDIT_S, "s"),
           note=f"{session.last_encoded} text encoded; {studio.checkpoint.text_encoder}")  # fmt: skip


def bench_maps(studio: Studio, repeat: int) -> None:
    query = studio.classify_sample(0)
    for method in ("tsne", "pca"):
        first, maps = timed(lambda m=method: studio.embedding_maps(method=m, query=query))
        cached, _ = timed(lambda m=method: studio.embedding_maps(method=m, query=query), repeat)
        points = sum(len(m.coords) for m in maps.values())
        figure(f"{method} maps of the reference sample ({points} points), cached", cached, "s", baseline=first,
               baseline_what="their first call")  # fmt: skip


def main() -> None:
    repeat = 2 if quick() else 5
    start, studio = timed(lambda: Studio.load(DEMO))
    print(f"Studio.load(demo) {start[0]:.2f} s (model + all-MiniLM-L6-v2)")
    bench_edit(studio, repeat)
    bench_maps(studio, repeat)
    if shutil.which("ffmpeg") is None:
        print("classify: skipped, ffmpeg is not installed")
        return
    with tempfile.TemporaryDirectory() as folder:
        clip = make_clip(Path(folder))
        for backbone in BACKBONES:
            bench_classify(backbone, clip, 1 if quick() else 3)


if __name__ == "__main__":
    main()
