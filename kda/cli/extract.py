"""`kda extract`: features of a labelled folder of videos, written as an AVCA dataset root for `kda train`."""

from __future__ import annotations

import sys

from kda.cli import DefaultsFormatter


def register(subparsers) -> None:
    from kda.media.backbones import WEIGHTS
    from kda.media.decode import Limits
    from kda.media.extract import DEFAULT_FRAMES, DEFAULT_MAX_CLIPS, DEFAULT_MAX_EXAMPLES
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
        "--max-clips", type=int, default=DEFAULT_MAX_CLIPS, help="cap on C3D clips per video (spread evenly)"
    )
    p.add_argument(
        "--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES, help="cap on 0.96 s VGGish examples per video"
    )
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames per video for the 'clip' setting")
    p.add_argument(
        "--max-minutes", type=float, default=Limits().max_duration_s / 60, help="refuse videos longer than this"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from tqdm import tqdm

    from kda.cli import CliError
    from kda.media.decode import Limits
    from kda.media.extract import extract_dataset

    if min(args.max_clips, args.max_examples, args.frames) < 1 or args.max_minutes <= 0:
        raise CliError("--max-clips, --max-examples and --frames must be at least 1, and --max-minutes positive")

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
        log=log,
        show_progress=not args.quiet,
    )
    print(summary.line())
    return 0
