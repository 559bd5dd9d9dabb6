"""`kda space`: create or update a Hugging Face Space that runs KDA Studio on a checkpoint from the Hub."""

from __future__ import annotations

from kda.cli import DefaultsFormatter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "space",
        help="create or update a Hugging Face Space running the app on a Hub checkpoint",
        description="Creates the Gradio Space OWNER/NAME (or updates it) in one commit holding what the app needs "
        "(app.py, demo/, kda/, requirements.txt, packages.txt, the example videos and a README with the Space's "
        "front matter), pins the checkpoint to its current commit and sets it as the Space variable "
        "KDA_CHECKPOINT. Prints the Space's URL on the last line. Needs a Hub token (`hf auth login` or HF_TOKEN).",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("space", help="Space repository OWNER/NAME (created if missing)")
    p.add_argument(
        "--checkpoint",
        required=True,
        help="hf-hub:OWNER/MODEL[@REVISION], e.g. the last line `kda push` prints; without a revision, the "
        "current head of main is pinned",
    )
    p.add_argument("--private", action="store_true", help="create the Space private")
    p.set_defaults(run=run)


def run(args) -> int:
    from kda.space import VARIABLE, make_space

    made = make_space(args.space, args.checkpoint, private=args.private)
    print(f"Space {made.space} at commit {made.revision}: {len(made.files)} files; {VARIABLE}={made.checkpoint}")
    print(made.url)
    return 0
