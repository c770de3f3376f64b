"""`bootpig serve`: run the HTTP API (settings: BOOTPIG_HOST, BOOTPIG_PORT, REDIS_URL, limits, API keys)."""

from __future__ import annotations

import argparse

from bootpig.commands.common import add_listen_flags


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the HTTP API (needs Redis; jobs run on `bootpig worker`)",
        description="Serve the API and the web page. Generation runs on workers; see docs/service.md.",
    )
    add_listen_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.server import serve
    from bootpig.settings import get_settings

    settings = get_settings()
    return serve(settings, args.host or settings.host, args.port or settings.port)
