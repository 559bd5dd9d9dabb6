"""`kda classify`: classify one video with a checkpoint (the same library path as the app)."""

from __future__ import annotations

import json
from pathlib import Path

from kda.cli import DefaultsFormatter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "classify",
        help="classify a video among a checkpoint's seen and unseen classes",
        description="Extracts the video's features with the extractor the checkpoint names and prints the top "
        "classes under GZSL (all classes, calibrated stacking with the checkpoint's beta) or ZSL (unseen only).",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("video", help="video file")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder or hf-hub: id")
    p.add_argument("--top-k", type=int, default=5, help="classes to show")
    p.add_argument("--zsl", action="store_true", help="rank unseen classes only")
    p.add_argument("--json", dest="json_out", help="also write the prediction as JSON to this file")
    p.add_argument("--device", default="auto", help="where the networks run: auto, cpu, cuda or cuda:N")
    p.set_defaults(run=run)


def run(args) -> int:
    from kda.cli import CliError
    from kda.device import resolve_device
    from kda.studio import Studio

    if args.top_k < 1:
        raise CliError("--top-k must be at least 1")
    studio = Studio.load(args.checkpoint, device=resolve_device(args.device))
    prediction = studio.classify(args.video, top_k=args.top_k)
    ranked = prediction.zsl if args.zsl else prediction.gzsl
    print(f"{'ZSL (unseen classes only)' if args.zsl else f'GZSL (beta {prediction.beta:.2f})'}: {prediction.source}")
    for rank, s in enumerate(ranked, start=1):
        print(
            f"{rank:>2}. {s.name:<32} {'seen' if s.seen else 'UNSEEN':<7} score {s.score:.3f}  distance {s.distance:.3f}"
        )
    print(f"modality: {prediction.modality.summary}")
    for note in prediction.notes:
        print(f"note: {note.message}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(prediction.to_json(), indent=1) + "\n")
    return 0
