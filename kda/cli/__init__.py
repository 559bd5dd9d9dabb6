"""`python -m kda`: a thin command line over the library. Each subcommand lives in its own module
with `register(subparsers)` (adds its parser, sets `run`) and `run(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import re
import sys

# Subcommand modules, in the order `--help` lists them.
COMMANDS = ("info", "synth", "train", "evaluate", "classify", "describe", "extract", "reproduce", "push", "space")


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None: those options say in their help what happens without them."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def with_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """Library messages name parameters in backquotes (`base_url`); on the command line, name the flag."""
    flags = {a.dest: a.option_strings[-1] for a in parser._actions if a.option_strings}
    return re.sub(r"`(\w+)`", lambda m: flags.get(m.group(1), m.group(0)), message)


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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        print("kda: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line for every error a user can cause; see `user_errors`
        if not isinstance(e, user_errors()):
            raise
        command = parser._subparsers._group_actions[0].choices[args.command]
        print(f"kda {args.command}: error: {with_flags(str(e), command)}", file=sys.stderr)
        return 1


def user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean bad input, not a bug: reported in one line."""
    from kda.errors import KdaError

    return (CliError, KdaError, FileNotFoundError, NotADirectoryError, PermissionError)
