"""A minimal HTTP/1.1 keep-alive client for load generation on the machine being measured.

`api_load.py` runs on the same two cores as the API it measures, so every millisecond the load generator
spends on a request is a millisecond the server does not get, and shows up as server latency. httpx
spent about as much CPU per request as the API did (1.7 ms per submission, ~1 ms per poll: it parses
with pure-Python h11 under anyio); this client writes a prepared request in one call and reads the
answer by its Content-Length, which is all the load generator needs. Real clients run on their own
machines; what is measured should be the server.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from urllib.parse import urlsplit


class ConnectionDropped(Exception):
    """The server closed the connection before answering (e.g. an idle keep-alive connection)."""


@dataclass
class Reply:
    status_code: int
    content: bytes

    def json(self):
        return json.loads(self.content)

    def raise_for_status(self) -> Reply:
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}: {self.content[:300]!r}")
        return self


class RawClient:
    """One keep-alive connection to `base_url` (one simulated client), reopened when the server closes it."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in {"Host": parts.netloc, **(headers or {})}.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = f"{method} {path} HTTP/1.1\r\n{self.fixed}{extra}Content-Length: {len(body)}\r\n\r\n"
        try:
            self.writer.writelines((head.encode("latin-1"), body))
            await self.writer.drain()
            return await self._read_reply()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise ConnectionDropped(str(exc) or type(exc).__name__) from exc

    async def _read_reply(self) -> Reply:
        assert self.reader is not None
        status = int((await self.reader.readuntil(b"\r\n")).split(b" ", 2)[1])
        length, close = 0, False
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        content = await self.reader.readexactly(length)
        if close:
            await self.close()
        return Reply(status, content)

    async def get(self, path: str) -> Reply:
        return await self.request("GET", path)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        return await self.request("POST", path, body, headers)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None
