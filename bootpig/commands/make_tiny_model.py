"""`bootpig make-tiny-model DIR`: the random-weight demo/test model in a real model's layout."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "make-tiny-model",
        help="write a tiny random-weight model (SD layout + BootPIG weights) for demos and tests",
    )
    p.add_argument("directory")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from model.tiny import make_tiny_model

    path = make_tiny_model(args.directory, seed=args.seed)
    print(f"wrote tiny random-weight model to {path}")
    return 0
