"""`kda synth`: write a synthetic benchmark in the AVCA layout (real class names and split roles)."""

from __future__ import annotations

from kda.benchmark import DATASETS, SETTING_DIMS
from kda.cli import DefaultsFormatter
from kda.synth import SynthConfig


def register(subparsers) -> None:
    defaults = SynthConfig()
    p = subparsers.add_parser(
        "synth",
        help="write a synthetic benchmark with learnable zero-shot signal",
        description="Write a synthetic dataset root in the AVCA layout, with knowledge_vectors.npz inside it "
        "(pass that file to `kda train --knowledge`).",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("--dataset", choices=list(DATASETS), default="UCF", help="benchmark whose classes and splits to use")
    p.add_argument("--setting", choices=list(SETTING_DIMS), default="cls", help="feature setting (dims and scales)")
    p.add_argument("--out", required=True, help="dataset root to write")
    p.add_argument("--train-videos", type=int, default=defaults.train_videos, help="videos per class in stage_1_train")
    p.add_argument("--eval-videos", type=int, default=defaults.eval_videos, help="videos per class in other folders")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.set_defaults(run=run)


def run(args) -> int:
    from kda.cli import CliError
    from kda.synth import write_synthetic_benchmark

    if args.train_videos < 2 or args.eval_videos < 1:
        raise CliError("--train-videos must be at least 2 and --eval-videos at least 1")
    cfg = SynthConfig(train_videos=args.train_videos, eval_videos=args.eval_videos, seed=args.seed)
    summary = write_synthetic_benchmark(args.out, args.dataset, args.setting, cfg)
    print(
        f"wrote {summary.videos} videos of {summary.classes} {args.dataset} classes ({args.setting}) to {summary.root}"
    )
    print(f"knowledge vectors: {summary.knowledge}")
    return 0
