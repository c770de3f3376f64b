"""`bootpig` command line: one tool, one subcommand per job, defaults from the settings objects.

Each subcommand lives in `bootpig/commands/<name>.py` and exposes `register(subparsers)`; heavy imports
happen inside the command so `bootpig --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module

COMMANDS = [
    "make_tiny_model",
    "generate",
    "serve",
    "worker",
    "up",
    "train",
    "synth",
    "eval",
    "toyworld",
    "config",
    "submit",
    "subjects",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bootpig", description="Zero-shot personalized image generation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"bootpig.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError) as exc:
        print(f"bootpig {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
