"""`kda synth`: write a synthetic benchmark in the AVCA layout (real class names and split roles)."""

from __future__ import annotations

from kda.benchmark import DATASETS
from kda.cli import DefaultsFormatter
from kda.settings import list_settings
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
    p.add_argument("--setting", choices=list_settings(), default="cls", help="feature setting (dims and scales)")
    p.add_argument("--out", required=True, help="dataset root to write")
    p.add_argument("--train-videos", type=int, default=defaults.train_videos, help="videos per class in stage_1_train")
    p.add_argument("--eval-videos", type=int, default=defaults.eval_videos, help="videos per class in other folders")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--latent-dim", type=int, default=defaults.latent_dim, help="intrinsic dimension of the features")
    p.add_argument(
        "--knowledge",
        help="real class knowledge to derive the features from: 'ours', 'released' (see `kda train`), a "
        "knowledge file encoded with --text-encoder, or vectors; default: random clustered knowledge",
    )
    p.add_argument("--text-encoder", help="text encoder id for a knowledge file (default: the CLIP default)")
    p.set_defaults(run=run)


def run(args) -> int:
    from kda.cli import CliError
    from kda.knowledge.class_matrix import load_class_matrix
    from kda.synth import write_synthetic_benchmark

    if args.train_videos < 2 or args.eval_videos < 1 or args.latent_dim < 1:
        raise CliError("--train-videos must be at least 2, --eval-videos and --latent-dim at least 1")
    cfg = SynthConfig(
        train_videos=args.train_videos, eval_videos=args.eval_videos, latent_dim=args.latent_dim, seed=args.seed
    )
    class_matrix = (
        load_class_matrix(args.knowledge, args.text_encoder, dataset=args.dataset) if args.knowledge else None
    )
    summary = write_synthetic_benchmark(args.out, args.dataset, args.setting, cfg, class_matrix)
    print(
        f"wrote {summary.videos} videos of {summary.classes} {args.dataset} classes ({args.setting}) to {summary.root}"
    )
    print(f"knowledge vectors: {summary.knowledge}")
    return 0
