"""Read a multipart/form-data body as it streams in, refusing it the moment it breaks a limit.

Starlette's own form parser spools every file part to disk without a size cap, so a client could fill the
disk before any check ran. Here the body is fed chunk by chunk to python-multipart's streaming parser and
the per-file, per-field, per-request and part-count limits are enforced on running totals. A client that
stalls between two chunks, or takes too long in all, is answered 408. Files over `spool_bytes` go to a
temporary file, so the API's memory does not grow with the uploads it is reading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from app.errors import APIError

log = logging.getLogger(__name__)
MAX_TEXT_FIELD_BYTES = 16 * 1024  # prompts are limited to far fewer characters by GenerationConfig
MAX_EXTRA_PARTS = 32  # text fields a request may carry besides its images
MAX_BOUNDARY_LENGTH = 70  # RFC 2046; python-multipart itself fails on more than 256

# OpenAPI answers of every route that reads a multipart upload (POST /generate, POST /subjects)
UPLOAD_RESPONSES: dict[int | str, dict] = {
    401: {"description": "Missing or invalid API key"},
    408: {"description": "The body arrived too slowly (stalled longer than client_read_timeout)"},
    413: {"description": "A file, the pixel count or the request is over its limit"},
    415: {"description": "Not multipart, not an image, or not JPEG/PNG/WebP"},
    503: {"description": "Every upload slot is busy (retry shortly), or Redis is unavailable"},
}


@dataclass(frozen=True)
class UploadLimits:
    file_field: str
    max_files: int
    max_file_bytes: int
    max_request_bytes: int
    spool_bytes: int = 0
    read_timeout: float | None = None  # seconds between two chunks of the body
    total_timeout: float | None = None  # seconds for the whole body

    @classmethod
    def from_settings(cls, settings, file_field: str, max_files: int) -> UploadLimits:
        return cls(
            file_field,
            max_files,
            settings.max_file_bytes,
            settings.max_request_bytes,
            settings.upload_spool_bytes,
            settings.client_read_timeout,
            settings.upload_timeout,
        )


@dataclass
class UploadedFile:
    """One uploaded file, in memory or spooled to disk (see `UploadLimits.spool_bytes`)."""

    filename: str
    content_type: str
    file: SpooledTemporaryFile
    size: int

    @property
    def data(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


@dataclass
class MultipartForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)

    def close(self) -> None:
        """Delete the spooled files (they are also deleted when garbage-collected)."""
        for upload in self.files:
            upload.close()


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


class _FormBuilder:
    """Callbacks of the streaming parser: collects parts and checks limits as bytes arrive."""

    def __init__(self, limits: UploadLimits):
        self.limits = limits
        self.form = MultipartForm()
        self.parts = 0
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._filename: str | None = None
        self._buffer = bytearray()
        self._file: SpooledTemporaryFile | None = None
        self._file_size = 0

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.limits.max_files + MAX_EXTRA_PARTS:
            raise APIError(422, "too_many_parts", "the form has too many parts")
        self._headers, self._buffer = {}, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise APIError(400, "malformed_form", "a form part has no name")
        self._name = options[b"name"].decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._filename = None if filename is None else filename.decode("utf-8", "replace")
        if self._name == self.limits.file_field:
            if len(self.form.files) >= self.limits.max_files:
                raise APIError(
                    422,
                    "too_many_images",
                    f"at most {self.limits.max_files} reference images are accepted",
                    self.limits.file_field,
                )
            self._file, self._file_size = SpooledTemporaryFile(max_size=self.limits.spool_bytes), 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name == self.limits.file_field:
            self._file_size += end - start
            if self._file_size > self.limits.max_file_bytes:
                raise APIError(
                    413,
                    "file_too_large",
                    f"image {len(self.form.files)} is larger than {_mib(self.limits.max_file_bytes)}",
                    self.limits.file_field,
                    index=len(self.form.files),
                )
            self._file.write(data[start:end])
            return
        self._buffer += data[start:end]
        if len(self._buffer) > MAX_TEXT_FIELD_BYTES:
            raise APIError(413, "field_too_large", f"{self._name} is too long", self._name)

    def on_part_end(self) -> None:
        if self._name == self.limits.file_field:
            upload, self._file = self._file, None
            if not self._file_size and not self._filename:
                upload.close()
                return  # what a browser sends for a file input left empty
            content_type = self._headers.get(b"content-type", b"application/octet-stream").decode("latin-1")
            self.form.files.append(UploadedFile(self._filename or "", content_type, upload, self._file_size))
            return
        if self._filename is not None:
            raise APIError(
                422, "unexpected_file", f"{self._name} must be a text field, not a file", self._name
            )
        if self._name in self.form.fields:
            raise APIError(422, "duplicate_field", f"{self._name} is given more than once", self._name)
        try:
            self.form.fields[self._name] = self._buffer.decode("utf-8")
        except UnicodeDecodeError:
            raise APIError(422, "invalid_text", f"{self._name} is not valid UTF-8", self._name) from None


async def read_multipart(request: Request, limits: UploadLimits) -> MultipartForm:
    """Parse the request body with every limit enforced while it is read (the caller closes the form)."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type == b"application/x-www-form-urlencoded":
        raise APIError(422, "no_images", "no images: upload them as multipart/form-data", limits.file_field)
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise APIError(415, "not_multipart", "send the request as multipart/form-data", None)
    if not 0 < len(options[b"boundary"]) <= MAX_BOUNDARY_LENGTH:
        message = f"the multipart boundary must be 1-{MAX_BOUNDARY_LENGTH} characters long"
        raise APIError(400, "malformed_form", message, None)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_request_bytes:
        raise _too_large(limits)
    builder = _FormBuilder(limits)
    parser = MultipartParser(options[b"boundary"], builder.callbacks())
    received = 0
    try:
        async for chunk in _timed_chunks(request, limits):
            received += len(chunk)
            if received > limits.max_request_bytes:
                raise _too_large(limits)
            try:
                parser.write(chunk)
            except APIError:
                raise
            except Exception as exc:  # the multipart parser's own errors: a malformed body
                raise APIError(
                    400, "malformed_form", f"the multipart body is malformed ({exc})", None
                ) from None
        parser.finalize()
    except BaseException:
        builder.form.close()
        if builder._file is not None:
            builder._file.close()
        raise
    return builder.form


async def _timed_chunks(request: Request, limits: UploadLimits):
    """The body's chunks; 408 when the client stalls or is too slow, 400 when it goes away mid-body."""
    stream = request.stream().__aiter__()
    deadline = time.monotonic() + limits.total_timeout if limits.total_timeout else None
    while True:
        wait = limits.read_timeout
        if deadline is not None:
            left = deadline - time.monotonic()
            wait = left if wait is None else min(wait, left)
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), wait)
        except StopAsyncIteration:
            return
        except (TimeoutError, asyncio.TimeoutError):
            log.info("upload from %s timed out", request.client.host if request.client else "?")
            raise APIError(408, "request_timeout", "the request body arrived too slowly", None) from None
        except ClientDisconnect:
            log.info("client %s went away mid-upload", request.client.host if request.client else "?")
            raise APIError(
                400, "client_disconnected", "the client closed the connection mid-body", None
            ) from None
        yield chunk


def _too_large(limits: UploadLimits) -> APIError:
    return APIError(
        413, "request_too_large", f"the request is larger than {_mib(limits.max_request_bytes)}", None
    )


class UploadSlots:
    """At most `size` request bodies are read and checked at once in this API process.

    With the file limits this bounds the API's memory; a submission that finds every slot taken waits
    up to `wait` seconds (its body stays in the kernel's socket buffer meanwhile), then gets 503."""

    def __init__(self, size: int, wait: float):
        self.size, self.wait = size, wait
        self._free = asyncio.Semaphore(size)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._free.acquire(), self.wait)
        except (TimeoutError, asyncio.TimeoutError):
            raise APIError(503, "busy", "too many uploads are in progress; retry shortly", None) from None
        try:
            yield
        finally:
            self._free.release()
