"""`kda extract`: features of a labelled folder of videos, written as an AVCA dataset root for `kda train`."""

from __future__ import annotations

import sys

from kda.cli import DefaultsFormatter


def register(subparsers) -> None:
    from kda.media.backbones import WEIGHTS
    from kda.media.dataset import DatasetOptions
    from kda.media.extract import DEFAULT_MAX_CLIPS
    from kda.media.pipeline import CPU_BATCH, GPU_BATCH, PRECISIONS
    from kda.settings import list_settings

    defaults = DatasetOptions()  # every default below is the library's
    each, net = defaults.extract, defaults.network  # per video; the networks

    p = subparsers.add_parser(
        "extract",
        help="extract features of your own videos into an AVCA dataset root",
        description="Extract audio and visual features of labelled videos and write them in the AVCA layout "
        "(class lists, split CSVs, one HDF5 file per class), so that `kda train --root OUT --dataset NAME` "
        "trains on them. Resumable: videos already in OUT are kept. A file that cannot be used is reported and "
        "skipped. Without a split column the split is made deterministically from the names: 20% of the classes "
        "unseen in validation, 20% unseen in test, the rest seen, and each seen class's videos spread over "
        "train, validation and test (details in kda/media/labels.py); this needs 3 or more classes.",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("--videos", required=True, help="folder the filenames in --labels are relative to")
    p.add_argument("--labels", required=True, help="CSV with columns filename,label[,split] (split: an AVCA folder)")
    p.add_argument("--out", required=True, help="dataset root to write (created; reused when resuming)")
    p.add_argument(
        "--setting", choices=list_settings(extractable=True), default=each.setting, help="feature setting (backbones)"
    )
    p.add_argument(
        "--dataset", default=defaults.dataset, help="name of this dataset; pass the same to `kda train --dataset`"
    )
    p.add_argument(
        "--weights",
        choices=WEIGHTS,
        default=net.weights,
        help="'pretrained': the public weight files (downloaded and verified); 'offline': seeded random weights",
    )
    p.add_argument(
        "--max-clips",
        type=int,
        help=f"speed cap on C3D clips per video, spread evenly (e.g. {DEFAULT_MAX_CLIPS}), recorded in "
        "extraction.json; default: every clip, as the benchmark's features were made",
    )
    p.add_argument(
        "--max-examples", type=int, default=each.max_examples, help="cap on 0.96 s VGGish examples per video"
    )
    p.add_argument("--frames", type=int, default=each.frames, help="frames per video for the 'clip' setting")
    p.add_argument(
        "--max-minutes", type=float, default=each.limits.max_duration_s / 60, help="refuse videos longer than this"
    )
    p.add_argument("--device", default="auto", help="where the networks run: auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--precision", choices=PRECISIONS, default=net.precision, help="bf16: faster on GPUs, not benchmark-exact"
    )
    p.add_argument(
        "--workers", type=int, default=defaults.workers, help="decoding processes (0: decode in this process)"
    )
    p.add_argument(
        "--batch", type=int, help=f"C3D clips per network pass (default {CPU_BATCH} on a CPU, {GPU_BATCH} on a GPU)"
    )
    p.add_argument(
        "--shard",
        help="K/N: extract only part K of N of the labelled videos into OUT/shards/K-of-N (e.g. one job of an array)",
    )
    p.add_argument("--merge", action="store_true", help="combine the shard parts in OUT into the dataset root")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from tqdm import tqdm

    from kda.cli import CliError
    from kda.device import resolve_device
    from kda.media.dataset import DatasetOptions, extract_dataset, parse_shard
    from kda.media.decode import Limits
    from kda.media.pipeline import ExtractOptions, NetworkOptions

    if min(args.max_clips or 1, args.max_examples, args.frames, args.batch or 1) < 1 or args.max_minutes <= 0:
        raise CliError("--max-clips, --max-examples, --frames and --batch must be at least 1, --max-minutes positive")
    if args.workers < 0 or (args.shard and args.merge):
        raise CliError("--workers must be at least 0; --shard and --merge are separate runs")

    def log(message: str) -> None:
        tqdm.write(message, file=sys.stderr)  # keeps the progress bar intact

    limits = Limits(max_duration_s=args.max_minutes * 60)
    options = DatasetOptions(
        dataset=args.dataset,
        extract=ExtractOptions(args.setting, args.max_clips, args.max_examples, args.frames, limits),
        network=NetworkOptions(args.weights, resolve_device(args.device), args.precision, args.batch),
        workers=args.workers,
        shard=parse_shard(args.shard) if args.shard else None,
        merge=args.merge,
    )
    summary = extract_dataset(args.videos, args.labels, args.out, options, log=log, show_progress=not args.quiet)
    print(summary.line())
    return 0
