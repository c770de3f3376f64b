"""Check an uploaded reference image before it is queued: format, pixel count, and that it is whole.

The pixel count comes from the header (Pillow's `open` is lazy) and is checked before any decoding, so
a small file that claims a huge size (a decompression bomb) costs nothing. Only then is the image
decoded, or for a JPEG stored as uploaded its end checked, which catches truncated and corrupt files in
the API instead of on a GPU worker.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from app.errors import APIError
from app.uploads import UploadedFile
from model.photos import downscaled_jpeg

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@dataclass(frozen=True)
class ImageLimits:
    """What a reference image may be (the values live in `bootpig.settings.Settings`)."""

    max_pixels: int
    max_side: int
    max_aspect_ratio: float

    @classmethod
    def from_settings(cls, settings) -> ImageLimits:
        return cls(settings.max_image_pixels, settings.max_image_side, settings.max_image_aspect_ratio)


def stored_references(uploads: Sequence[UploadedFile], limits: ImageLimits, side: int) -> list[bytes]:
    """`stored_reference` of each upload in order, in one call: one thread-pool hop per request."""
    return [stored_reference(upload.file, index, limits, side) for index, upload in enumerate(uploads)]


def stored_reference(
    source: BinaryIO, index: int, limits: ImageLimits, side: int, field: str = "images"
) -> bytes:
    """Check an uploaded image and return what Redis keeps of it, or raise an APIError naming
    `field[index]`.

    Kept: the file itself when it is within `side` pixels and `side`² bytes, else a JPEG downscaled to
    `side` (orientation applied, transparency on white). The worker only crops the object from it and
    resizes that to the model's size, so nothing it needs is lost, and a job's inputs in Redis stay below
    MAX_REFERENCES x `side`² bytes.

    Images are decoded to find truncated and corrupt files, except a JPEG kept as uploaded whose headers
    parse and which ends with the end-of-image marker: decoding it (even at the smallest DCT scale, since
    libjpeg still reads every coefficient) was half of a submission's CPU time, and the marker check
    catches the usual damage, a truncated upload. Damage inside such a file's compressed data, which
    libjpeg often decodes without error anyway, is reported by the worker as a failed job ("reference
    image i cannot be read")."""
    size = source.seek(0, io.SEEK_END)
    if not size:
        raise APIError(422, "empty_file", f"image {index} is empty", field, index)
    source.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
        try:
            image = Image.open(source)
        except UnidentifiedImageError:
            raise APIError(415, "not_an_image", f"image {index} is not an image file", field, index) from None
        except Image.DecompressionBombError:
            raise _too_many_pixels(index, limits.max_pixels, field) from None
        except Exception:
            raise APIError(422, "corrupt_image", f"image {index} cannot be read", field, index) from None
    with image:
        if image.format not in ACCEPTED_FORMATS:
            message = f"image {index} is {image.format}; accepted formats are JPEG, PNG and WebP"
            raise APIError(415, "unsupported_format", message, field, index)
        width, height = image.size
        _check_shape(width, height, index, limits, field)
        keep = max(width, height) <= side and size <= side * side
        if keep and image.format == "JPEG" and _ends_with_jpeg_eoi(source, size):
            source.seek(0)
            return source.read()
        if image.format == "JPEG":
            scale = 0 if keep else side / max(width, height)  # kept as is: the smallest decode will do
            image.draft(image.mode, (max(1, int(width * scale)), max(1, int(height * scale))))
        try:
            image.load()
        except Exception:
            raise APIError(
                422, "corrupt_image", f"image {index} is truncated or corrupt", field, index
            ) from None
        if keep:
            source.seek(0)
            return source.read()
        return downscaled_jpeg(image, side, side * side)


def _ends_with_jpeg_eoi(source: BinaryIO, size: int) -> bool:
    """Whether the file's last two bytes are JPEG's end-of-image marker (a truncated file's are not)."""
    source.seek(max(0, size - 2))
    return source.read(2) == b"\xff\xd9"


def _check_shape(width: int, height: int, index: int, limits: ImageLimits, field: str) -> None:
    """Refuse, from the header alone, sizes and shapes that would only cost the worker memory."""
    if width * height > limits.max_pixels:
        raise _too_many_pixels(index, limits.max_pixels, field)
    if max(width, height) > limits.max_side:
        message = f"image {index} is {width} x {height}; its sides may be at most {limits.max_side:,} pixels"
        raise APIError(413, "image_too_large", message, field, index)
    if max(width, height) > limits.max_aspect_ratio * max(1, min(width, height)):
        message = (
            f"image {index} is {width} x {height}; its long side may be at most "
            f"{limits.max_aspect_ratio:g} times its short side"
        )
        raise APIError(422, "aspect_ratio", message, field, index)


def _too_many_pixels(index: int, max_pixels: int, field: str) -> APIError:
    return APIError(
        413,
        "too_many_pixels",
        f"image {index} has more than {max_pixels:,} pixels (width x height)",
        field,
        index,
    )
