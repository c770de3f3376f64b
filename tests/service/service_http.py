"""Small helpers the service tests share: a free port and one way to submit a job."""

from __future__ import annotations

import socket

import httpx

DEFAULT_FIELDS = {"prompt": "a dog", "steps": "2", "segment": "none"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def submit(
    client: httpx.Client, photos: list[bytes], headers: dict | None = None, **fields
) -> httpx.Response:
    """POST /generate with `photos` as the images field (none: no file part) and the fields given
    (defaults: a 2-step job without segmentation)."""
    files = [("images", (f"ref{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
    data = {**DEFAULT_FIELDS, **fields}
    return client.post(
        "/generate", data={k: str(v) for k, v in data.items()}, files=files or None, headers=headers
    )
