"""`kda push`: upload a checkpoint folder to the Hugging Face Hub with a generated model card."""

from __future__ import annotations

from kda.cli import DefaultsFormatter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "push",
        help="upload a checkpoint to the Hugging Face Hub with a model card",
        description="Writes README.md (a model card generated from config.json) into the checkpoint folder and "
        "uploads the folder in one commit, so `python app.py --checkpoint hf-hub:OWNER/NAME` opens it anywhere. "
        "Prints the repository's URL and, on the last line, the id pinned to the commit it made "
        "(hf-hub:OWNER/NAME@COMMIT), ready for `kda space`. Needs a Hub token (`hf auth login` or HF_TOKEN).",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint folder")
    p.add_argument("--repo", required=True, help="Hub repository OWNER/NAME (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--card-only", action="store_true", help="write README.md and stop (no upload)")
    p.set_defaults(run=run)


def run(args) -> int:
    from kda.hub import push_checkpoint, write_card

    if args.card_only:
        print(f"model card written to {write_card(args.checkpoint, args.repo)}")
        return 0
    pushed = push_checkpoint(args.checkpoint, args.repo, private=args.private)
    print(f"uploaded {args.checkpoint} to {pushed.url} (commit {pushed.revision}); open it with:")
    print(f"python app.py --checkpoint {pushed.pinned_id}")
    print(pushed.pinned_id)  # the last line alone: `kda space ... --checkpoint "$(kda push ... | tail -1)"`
    return 0
