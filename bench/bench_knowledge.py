"""Time building the class matrix: every class from scratch, again with every text encoded before, and after
editing one description (the Knowledge tab's budget: an edit to updated predictions in under 0.5 s). Records each edit's time against
encoding every text (bench/record.py).

    python bench/bench_knowledge.py [--knowledge assets/knowledge/ucf.json] [--encoder ViT-B-32-quickgelu@random:0]
                                    [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from record import figure, quick  # noqa: E402

from kda.knowledge import (  # noqa: E402
    OFFLINE_TEXT_ENCODER,
    TINY_TEXT_ENCODER,
    ClassMatrixBuilder,
    load_knowledge,
    load_text_encoder,
)


def timed(label: str, function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    timed.seconds = time.perf_counter() - start
    print(f"{label:<48} {timed.seconds:8.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--knowledge", default=str(ROOT / "assets" / "knowledge" / "ucf.json"))
    parser.add_argument("--encoder", default=OFFLINE_TEXT_ENCODER)
    parser.add_argument("--quick", action="store_true", help=f"the small {TINY_TEXT_ENCODER} text encoder")
    args = parser.parse_args()
    args.encoder = TINY_TEXT_ENCODER if quick() else args.encoder

    knowledge = load_knowledge(args.knowledge)
    encoder = timed(f"load {args.encoder}", load_text_encoder, args.encoder)
    texts = sum(len(knowledge.texts(c)) for c in knowledge.class_ids)
    builder = ClassMatrixBuilder(encoder)
    timed(f"build all {len(knowledge)} class rows ({texts} texts), nothing encoded yet", builder.rows, knowledge)
    scratch = timed.seconds
    timed("build all rows again (every text encoded before)", builder.rows, knowledge)

    class_id = knowledge.class_ids[0]
    entry = knowledge.get(class_id)
    for take, text in enumerate(["A freshly edited description of this class, typed by a user.", "Another edit."]):
        descriptions = (entry.descriptions[0], replace(entry.descriptions[1], text=text), *entry.descriptions[2:])
        knowledge.set_class(class_id, replace(entry, descriptions=descriptions))
        ids = None if take == 0 else [class_id]
        what = "all rows" if ids is None else f"only {class_id}'s row"
        _, encoded = timed(f"build {what} after editing one text of {class_id}", builder.rows, knowledge, ids)
        figure(
            f"class matrix: {what} after one edit ({encoded} text encoded)",
            timed.seconds,
            "s",
            baseline=scratch,
            baseline_what=f"all {texts} texts encoded",
        )


if __name__ == "__main__":
    main()
