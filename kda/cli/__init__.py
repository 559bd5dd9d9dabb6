"""`python -m kda`: a thin command line over the library. Each subcommand lives in its own module
with `register(subparsers)` (adds its parser, sets `run`) and `run(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order `--help` lists them.
COMMANDS = ("info", "synth", "train", "evaluate", "describe", "extract")


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None: those options say in their help what happens without them."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kda",
        description="KDA: knowledge-augmented audio-visual zero-shot video classification.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"kda.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        print("kda: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line for every error a user can cause; see `user_errors`
        if not isinstance(e, user_errors()):
            raise
        print(f"kda {args.command}: error: {e}", file=sys.stderr)
        return 1


def user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean bad input, not a bug: reported in one line."""
    from kda.errors import KdaError

    return (CliError, KdaError, FileNotFoundError, NotADirectoryError, PermissionError)
