"""What the commands that talk to a running service share: `--server`/`--api-key` and error reporting."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from bootpig.settings import get_settings


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    settings = get_settings()
    parser.add_argument(
        "--server", default=settings.server_url, help="service URL (default: BOOTPIG_SERVER_URL)"
    )
    parser.add_argument(
        "--api-key",
        default=settings.api_key,
        help="API key, when the server needs one (default: BOOTPIG_API_KEY)",
    )


def client_from(args: argparse.Namespace):
    from bootpig.client import Client

    return Client(args.server, api_key=args.api_key or "")


def report_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The server's message (or why it could not be reached) on stderr and exit 1, never a traceback."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        import httpx

        from bootpig.client import JobFailed, ServiceError

        try:
            return command(args)
        except (ServiceError, JobFailed, TimeoutError) as exc:
            print(f"bootpig {args.command}: {exc}", file=sys.stderr)
        except httpx.HTTPError as exc:
            print(f"bootpig {args.command}: cannot reach {args.server}: {exc}", file=sys.stderr)
        return 1

    return run
