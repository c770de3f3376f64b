"""Read a multipart/form-data body as it streams in, refusing it the moment it breaks a size limit.

Starlette's own form parser spools every file part to disk without a size cap, so a client could fill the
disk before any check ran. Here the body is fed chunk by chunk to python-multipart's streaming parser and
the per-file, per-field, per-request and part-count limits are enforced on running totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from app.errors import APIError

MAX_TEXT_FIELD_BYTES = 16 * 1024  # prompts are limited to far fewer characters by GenerationConfig
MAX_EXTRA_PARTS = 32  # text fields a request may carry besides its images


@dataclass(frozen=True)
class UploadLimits:
    file_field: str
    max_files: int
    max_file_bytes: int
    max_request_bytes: int


@dataclass
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


@dataclass
class MultipartForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)


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
        if self._name == self.limits.file_field and len(self.form.files) >= self.limits.max_files:
            raise APIError(
                422,
                "too_many_images",
                f"at most {self.limits.max_files} reference images are accepted",
                self.limits.file_field,
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._buffer += data[start:end]
        if self._name == self.limits.file_field:
            if len(self._buffer) > self.limits.max_file_bytes:
                raise APIError(
                    413,
                    "file_too_large",
                    f"image {len(self.form.files)} is larger than {_mib(self.limits.max_file_bytes)}",
                    self.limits.file_field,
                    index=len(self.form.files),
                )
        elif len(self._buffer) > MAX_TEXT_FIELD_BYTES:
            raise APIError(413, "field_too_large", f"{self._name} is too long", self._name)

    def on_part_end(self) -> None:
        if self._name == self.limits.file_field:
            if not self._buffer and not self._filename:
                return  # what a browser sends for a file input left empty
            content_type = self._headers.get(b"content-type", b"application/octet-stream").decode("latin-1")
            self.form.files.append(UploadedFile(self._filename or "", content_type, bytes(self._buffer)))
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
    """Parse the request body with every limit enforced while it is read."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type == b"application/x-www-form-urlencoded":
        raise APIError(422, "no_images", "no images: upload them as multipart/form-data", limits.file_field)
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise APIError(415, "not_multipart", "send the request as multipart/form-data", None)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_request_bytes:
        raise APIError(
            413, "request_too_large", f"the request is larger than {_mib(limits.max_request_bytes)}", None
        )
    builder = _FormBuilder(limits)
    parser = MultipartParser(options[b"boundary"], builder.callbacks())
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limits.max_request_bytes:
            raise APIError(
                413, "request_too_large", f"the request is larger than {_mib(limits.max_request_bytes)}", None
            )
        try:
            parser.write(chunk)
        except APIError:
            raise
        except Exception as exc:  # the multipart parser's own errors: a malformed body
            raise APIError(400, "malformed_form", f"the multipart body is malformed ({exc})", None) from None
    parser.finalize()
    return builder.form
