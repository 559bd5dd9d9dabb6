"""`kda reproduce`: the public AVCA features to a results table and a checkpoint, in one command."""

from __future__ import annotations

import sys

from kda.benchmark import DATASETS
from kda.cli import DefaultsFormatter


def register(subparsers) -> None:
    from kda.metrics import BETA_GRIDS
    from kda.train import TrainConfig

    p = subparsers.add_parser(
        "reproduce",
        help="download the AVCA features, train and evaluate, and write results beside the published ones",
        description="Download avgzsl_benchmark_datasets.zip (resumable; its SHA-256 is recorded at the first "
        "download and enforced afterwards) or take a local copy, unpack one dataset and setting, encode the "
        "knowledge (ours, the authors' released descriptions, or both side by side), train with the paper's protocol (and the released preset with --also-released), and "
        "write OUT/results.json, OUT/results.md and the checkpoints OUT/paper (OUT/released) for app.py.",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("--dataset", required=True, choices=list(DATASETS))
    p.add_argument("--setting", required=True, choices=("main", "cls"))
    p.add_argument("--out", required=True, help="folder for the data, checkpoints and results")
    p.add_argument("--source", help="archive URL or local file (default: the AVCA-GZSL README's link)")
    p.add_argument("--text-encoder", help="text encoder for the knowledge (default: the paper's CLIP ViT-B/32)")
    p.add_argument("--also-released", action="store_true", help="also train the `released` preset")
    p.add_argument(
        "--knowledge",
        choices=("ours", "released", "both"),
        default="ours",
        help="whose class descriptions: ours (assets/knowledge), the KDA authors' (downloaded from their repository "
        "at a pinned commit, SHA-256 checked), or both, side by side in results.md",
    )
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="stage-1 epochs")
    p.add_argument(
        "--beta-grid", choices=BETA_GRIDS, help="calibrated-stacking search (default: each preset's: gaps, avca)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args) -> int:
    from kda.cli import CliError
    from kda.reproduce import reproduce

    if args.epochs < 1:
        raise CliError("--epochs must be at least 1")
    results = reproduce(
        args.dataset,
        args.setting,
        args.out,
        source=args.source,
        text_encoder=args.text_encoder,
        also_released=args.also_released,
        knowledge=args.knowledge,
        epochs=args.epochs,
        beta_grid=args.beta_grid,
        progress=not args.quiet,
        log=lambda message: print(message, file=sys.stderr),
    )
    for r in results["runs"]:
        t = r["test"]
        print(
            f"{r['preset']:<9} {r['knowledge']:<9} test S {t['seen']:.2f}  U {t['unseen']:.2f}  HM {t['hm']:.2f}  ZSL {t['zsl']:.2f}"
        )
    print(f"results: {args.out}/results.md; checkpoint: {results['runs'][0]['checkpoint']}")
    return 0
