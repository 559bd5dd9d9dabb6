"""`kda extract`: features of a labelled folder of videos, written as an AVCA dataset root for `kda train`."""

from __future__ import annotations

import sys

from kda.cli import DefaultsFormatter


def register(subparsers) -> None:
    from kda.media.backbones import WEIGHTS
    from kda.media.decode import Limits
    from kda.media.extract import DEFAULT_FRAMES, DEFAULT_MAX_CLIPS, DEFAULT_MAX_EXAMPLES
    from kda.media.pipeline import CPU_BATCH, GPU_BATCH, PRECISIONS
    from kda.settings import list_settings

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
        "--setting", choices=list_settings(extractable=True), default="cls", help="feature setting (backbones)"
    )
    p.add_argument("--dataset", default="custom", help="name of this dataset; pass the same to `kda train --dataset`")
    p.add_argument(
        "--weights",
        choices=WEIGHTS,
        default="pretrained",
        help="'pretrained': the public weight files (downloaded and verified); 'offline': seeded random weights",
    )
    p.add_argument(
        "--max-clips",
        type=int,
        help=f"speed cap on C3D clips per video, spread evenly (e.g. {DEFAULT_MAX_CLIPS}), recorded in "
        "extraction.json; default: every clip, as the benchmark's features were made",
    )
    p.add_argument(
        "--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES, help="cap on 0.96 s VGGish examples per video"
    )
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames per video for the 'clip' setting")
    p.add_argument(
        "--max-minutes", type=float, default=Limits().max_duration_s / 60, help="refuse videos longer than this"
    )
    p.add_argument("--device", default="auto", help="where the networks run: auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="bf16: faster on GPUs, not benchmark-exact")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (0: decode in this process)")
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
    from kda.media.decode import Limits
    from kda.media.extract import extract_dataset, parse_shard

    if min(args.max_clips or 1, args.max_examples, args.frames, args.batch or 1) < 1 or args.max_minutes <= 0:
        raise CliError("--max-clips, --max-examples, --frames and --batch must be at least 1, --max-minutes positive")
    if args.workers < 0 or (args.shard and args.merge):
        raise CliError("--workers must be at least 0; --shard and --merge are separate runs")

    def log(message: str) -> None:
        tqdm.write(message, file=sys.stderr)  # keeps the progress bar intact

    summary = extract_dataset(
        args.videos,
        args.labels,
        args.out,
        setting=args.setting,
        dataset=args.dataset,
        weights=args.weights,
        max_clips=args.max_clips,
        max_examples=args.max_examples,
        frames=args.frames,
        limits=Limits(max_duration_s=args.max_minutes * 60),
        device=resolve_device(args.device),
        precision=args.precision,
        workers=args.workers,
        batch=args.batch,
        shard=parse_shard(args.shard) if args.shard else None,
        merge=args.merge,
        log=log,
        show_progress=not args.quiet,
    )
    print(summary.line())
    return 0
