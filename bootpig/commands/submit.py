"""`bootpig submit`: send a generation job to a running service, follow it, save the images.

A thin layer over `bootpig.client`: the generation flags are derived from `GenerationConfig` (defaults
left to the server), errors are the server's own messages.
"""

from __future__ import annotations

import argparse
import sys
from enum import Enum
from typing import get_args

from bootpig.commands.remote import add_server_flags, client_from, report_errors
from model.config import GenerationConfig

# Sent by their own flags (or not at all): every other GenerationConfig field becomes `--name-with-dashes`.
OWN_FLAGS = {"prompt"}


def _flag_type(annotation: object) -> tuple[type, list[str] | None]:
    """argparse type (and choices, for enums) of a field annotated `T` or `T | None`."""
    kinds = [kind for kind in (get_args(annotation) or (annotation,)) if kind is not type(None)]
    kind = kinds[0] if len(kinds) == 1 and isinstance(kinds[0], type) else str
    if issubclass(kind, Enum):
        return str, [member.value for member in kind]
    return kind, None


def add_generation_flags(parser: argparse.ArgumentParser) -> None:
    """One optional flag per GenerationConfig field; unset flags let the server apply its defaults."""
    for name, info in GenerationConfig.model_fields.items():
        if name in OWN_FLAGS:
            continue
        kind, choices = _flag_type(info.annotation)
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=kind,
            choices=choices,
            default=None,
            help=f"{info.description} (default: the server's)",
        )


def register(subparsers) -> None:
    p = subparsers.add_parser("submit", help="submit a job to a running service and download its images")
    add_server_flags(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ref", action="append", help="reference photo (repeat, 1-8)")
    source.add_argument("--subject", help="id of a prepared subject (bootpig subjects create)")
    p.add_argument("--prompt", required=True)
    add_generation_flags(p)
    p.add_argument("--webhook", default=None, help="URL the service POSTs the finished job to (signed)")
    p.add_argument("--out", required=True, help="folder for the images (<job id>-<n>.png)")
    p.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    p.add_argument(
        "--timeout", type=float, default=None, help="seconds to wait for the job (default: no limit)"
    )
    p.set_defaults(func=run)


@report_errors
def run(args: argparse.Namespace) -> int:
    params = {name: getattr(args, name) for name in GenerationConfig.model_fields if name not in OWN_FLAGS}
    with client_from(args) as client:
        job = client.submit(
            args.prompt, references=args.ref or (), subject_id=args.subject, webhook=args.webhook, **params
        )
        print(f"job {job['id']} {job['status']} (seed {job['params'].get('seed')})", file=sys.stderr)
        if args.no_wait:
            print(job["id"])
            return 0
        job = client.wait(job["id"], timeout=args.timeout, progress=True)
        for path in client.download(job, args.out):
            print(path)
    return 0
