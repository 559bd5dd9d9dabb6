"""`kda evaluate`: evaluate a checkpoint once on a benchmark root's test split."""

from __future__ import annotations

from pathlib import Path

from kda.benchmark import DATASETS
from kda.cli import DefaultsFormatter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint on the test split of a benchmark root",
        description="Uses the checkpoint's knowledge and its beta (chosen on validation at training time).",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint folder or hf-hub: id")
    p.add_argument("--root", required=True, help="dataset root")
    p.add_argument("--dataset", help=f"{', '.join(DATASETS)} or a `kda extract` name; default: the checkpoint's")
    p.add_argument("--beta", type=float, help="override the checkpoint's beta")
    p.add_argument("--device", default="auto", help="where the model runs: auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--json",
        dest="json_out",
        help="write seen, unseen, hm, zsl, beta (and grid, empty at a given beta) as JSON to this file",
    )
    p.add_argument(
        "--scores-out",
        help="write per-video distances, true labels, class names and seen flags (.npz, or .json) to recompute "
        "the metrics independently",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from kda.benchmark import load_benchmark
    from kda.checkpoint import load_checkpoint
    from kda.cli import CliError
    from kda.device import resolve_device
    from kda.evaluation import evaluate_checkpoint, save_scores

    ckpt = load_checkpoint(args.checkpoint)
    ckpt.model.to(resolve_device(args.device))
    dataset = args.dataset or ckpt.provenance.get("dataset")
    if dataset is None:
        raise CliError("the checkpoint does not record its dataset; pass --dataset")
    bench = load_benchmark(args.root, dataset, ckpt.setting)
    beta = ckpt.beta if args.beta is None else args.beta
    evaluation = evaluate_checkpoint(ckpt, bench)
    result = evaluation.metrics(beta)
    print(result.table("test"))
    if args.json_out:
        Path(args.json_out).write_text(result.to_json() + "\n")
    if args.scores_out:
        save_scores(evaluation, bench.classes, args.scores_out, beta)
    return 0
