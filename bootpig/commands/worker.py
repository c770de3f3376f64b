"""`bootpig worker`: serve the job queue with the model loaded once (model and Redis from the settings)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "worker",
        help="run a queue worker (BOOTPIG_MODEL, REDIS_URL, ...; see docs/service.md)",
        description="Load the model once and run generation jobs from the Redis queue. Run one per GPU; "
        "any number of workers on any machines may serve the same Redis.",
    )
    p.add_argument(
        "--name", default=None, help="worker name (default: BOOTPIG_WORKER_NAME or host-pid-random)"
    )
    p.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bootpig.settings import get_settings
    from worker.main import serve

    settings = get_settings()
    if args.name:
        settings = settings.model_copy(update={"worker_name": args.name})
    return serve(settings, burst=args.burst)
