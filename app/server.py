"""Run the API under uvicorn with slow-client protection (what `bootpig serve` starts).

uvicorn closes idle keep-alive connections, but it waits forever for a request's headers: a client that
sends one header line every few seconds holds a connection (and a file descriptor) as long as it likes.
`HeaderDeadlineProtocol` closes a connection whose headers are not complete `client_read_timeout`
seconds after its request began (or after it connected); the body's pace is watched by `app.uploads`.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.supervisor import STARTUP_FAILURE, Supervisor, claim_port, reuse_port_socket, reuse_port_supported
from bootpig.settings import Settings, get_settings

log = logging.getLogger(__name__)
APP_FACTORY = "app.main:create_app"
KEEP_ALIVE_SECONDS = 5  # uvicorn's default: idle keep-alive connections are closed after this
REQUEST_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, plus a deadline for each request's headers."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Read in each server process (uvicorn's worker processes rebuild the protocol from its name).
        self.header_timeout = get_settings().client_read_timeout
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        self._disarm_header_deadline()  # uvicorn's keep-alive timeout watches the idle connection now
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_timed_out)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_timed_out(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered: its headers did arrive
        log.info("closing a connection whose request headers took over %g s", self.header_timeout)
        self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.transport.close()


def uvicorn_options() -> dict:
    """How every API process runs uvicorn (the protocol class is rebuilt by name in each process)."""
    return {
        "factory": True,
        "http": HeaderDeadlineProtocol,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "log_level": "info",
        "access_log": False,
    }


def run_api_process(host: str, port: int) -> None:
    """One of `api_workers` processes: uvicorn on a socket of its own that shares the port."""
    config = uvicorn.Config(APP_FACTORY, host=host, port=port, **uvicorn_options())
    try:
        sock = reuse_port_socket(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        sys.exit(STARTUP_FAILURE)
    uvicorn.Server(config).run(sockets=[sock])


def serve(settings: Settings, host: str, port: int) -> int:
    """Serve `create_app()` (settings from the environment) until stopped; with `api_workers` > 1, as that
    many processes sharing the port (see `app.supervisor`). Returns the exit status."""
    if settings.api_workers == 1 or not reuse_port_supported():
        # elsewhere than Linux, uvicorn's shared socket: correct, but a burst lands on one process
        uvicorn.run(APP_FACTORY, host=host, port=port, workers=settings.api_workers, **uvicorn_options())
        return 0
    try:
        port = claim_port(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        return 1
    return Supervisor(settings.api_workers, run_api_process, host, port).run()
