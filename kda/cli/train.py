"""`kda train`: train KDA on an AVCA benchmark root with the two-stage protocol; save a checkpoint."""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from kda.benchmark import DATASETS
from kda.cli import DefaultsFormatter
from kda.losses import LOSS_PRESETS
from kda.metrics import BETA_GRIDS
from kda.presets import PRESETS
from kda.settings import list_settings
from kda.train import PROTOCOLS, TrainConfig


def register(subparsers) -> None:
    d = TrainConfig()
    p = subparsers.add_parser(
        "train",
        help="train on a benchmark root and save a checkpoint",
        description="Stage 1 trains on stage_1_train and picks the epoch and beta on validation; stage 2 "
        "retrains on all of stage 1 for that many epochs and is evaluated once on test.",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("--root", required=True, help="dataset root (class-split/ and features/ inside)")
    p.add_argument(
        "--dataset",
        required=True,
        help=f"benchmark the root holds ({', '.join(DATASETS)}), or the --dataset name given to `kda extract`",
    )
    p.add_argument("--setting", choices=list_settings(), default="cls", help="feature setting")
    p.add_argument(
        "--knowledge",
        help="class knowledge: 'ours' (the shipped descriptions), 'released' (the KDA authors' descriptions, "
        "downloaded from a pinned commit and checked), a knowledge file (descriptions, encoded with "
        "--text-encoder) or an embeddings file (.npz names/embeddings, or .json); default: "
        "ROOT/knowledge_vectors.npz if present",
    )
    p.add_argument("--text-encoder", help="text encoder id for a descriptions file (default: the CLIP default)")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="paper",
        help="'paper': the method as published; 'released': exactly as the authors' released code trains "
        "(batches, forward, init, loss, test-set selection; kda/presets.py lists every difference)",
    )
    p.add_argument("--epochs", type=int, default=d.epochs, help="stage-1 epochs")
    p.add_argument("--batch-size", type=int, help="videos per batch (default: the preset's, 256 or 2048)")
    p.add_argument(
        "--batches-per-epoch",
        type=int,
        help="batches per epoch (default: the preset's; paper: one pass over the videos)",
    )
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--beta-grid",
        choices=BETA_GRIDS,
        help="calibrated-stacking search: 'gaps' tries every seen/unseen decision gap of the scores; 'avca' the "
        "benchmark's 0..3 step 0.2 (for exact comparison with published numbers); default: the preset's "
        "(paper: gaps, released: avca)",
    )
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="'paper': select on validation; 'released': the authors' selection on test (optimistic); "
        "default: the preset's",
    )
    p.add_argument(
        "--loss-preset", choices=list(LOSS_PRESETS), help="'released': alignment only; default: the preset's"
    )
    p.add_argument("--no-balance", action="store_true", help="sample videos uniformly instead of per class")
    p.add_argument(
        "--samples-per-class",
        type=int,
        default=3,
        help="test videos per class stored in the checkpoint as its reference sample (the app plots them); 0: none",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.add_argument("--device", default="auto", help="where to train: auto, cpu, cuda or cuda:N")
    p.add_argument("--description", help="what this checkpoint is, in words (stored in its provenance)")
    p.set_defaults(run=run)


def knowledge_option(args) -> str:
    """--knowledge as given (a file or a source name), or the root's own vectors."""
    from kda.cli import CliError

    if args.knowledge:
        return args.knowledge
    default = Path(args.root) / "knowledge_vectors.npz"
    if default.exists():
        return str(default)
    raise CliError(f"no --knowledge given and {default} does not exist")


def run(args) -> int:
    from kda.benchmark import load_benchmark
    from kda.checkpoint import save_checkpoint
    from kda.cli import CliError
    from kda.device import resolve_device
    from kda.knowledge.class_matrix import load_class_matrix
    from kda.losses import loss_preset
    from kda.presets import get_preset
    from kda.train import to_checkpoint, train

    preset = get_preset(args.preset)
    given = (("batch_size", args.batch_size), ("protocol", args.protocol), ("beta_grid", args.beta_grid))
    explicit = {k: v for k, v in given if v is not None}
    if args.batches_per_epoch is not None:
        explicit["batches_per_epoch"] = args.batches_per_epoch
    cfg = preset.train_config(
        epochs=args.epochs,
        lr=args.lr,
        seed=args.seed,
        class_balanced=not args.no_balance,
        **explicit,
    )
    if cfg.epochs < 1 or cfg.batch_size < 2 or (cfg.batches_per_epoch is not None and cfg.batches_per_epoch < 1):
        raise CliError("--epochs and --batches-per-epoch must be at least 1 and --batch-size at least 2")
    bench = load_benchmark(args.root, args.dataset, args.setting)
    class_matrix = load_class_matrix(
        knowledge_option(args), args.text_encoder, form=preset.class_matrix_form, dataset=args.dataset
    )
    class_matrix = class_matrix.bind(bench.classes, known=bench.all_classes)
    model_cfg = preset.model_config(args.setting, embed_dim=class_matrix.vectors.shape[1])
    loss_cfg = loss_preset(args.loss_preset) if args.loss_preset else preset.loss_config()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = (out / "train_log.jsonl").open("w")

    def on_epoch(entry) -> None:
        log_file.write(json.dumps(asdict(entry)) + "\n")
        log_file.flush()
        if not args.quiet:
            hm = f"  val HM {entry.metrics['hm']:.2f} (beta {entry.metrics['beta']:.3g})" if entry.metrics else ""
            tqdm.write(
                f"stage {entry.stage} epoch {entry.epoch:3d}  lr {entry.lr:.0e}  loss {entry.loss:.4f}{hm}",
                file=sys.stderr,
            )

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        if cfg.protocol == "released":
            print("warning: protocol 'released' selects the epoch and beta on the TEST set", file=sys.stderr)
        result = train(
            bench, class_matrix, model_cfg, loss_cfg, cfg, not args.quiet, on_epoch, device=resolve_device(args.device)
        )
    log_file.close()
    ckpt = to_checkpoint(
        result,
        bench,
        class_matrix,
        loss_cfg,
        cfg,
        {"knowledge": knowledge_option(args), **({"description": args.description} if args.description else {})},
        args.samples_per_class,
    )
    save_checkpoint(ckpt, out)
    if result.validation is not None:
        print(result.validation.table(f"val@{result.best_epoch}"))
    print(result.test.table("test"))
    print(f"checkpoint written to {out}")
    return 0
