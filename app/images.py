"""Check an uploaded reference image before it is queued: format, pixel count, and that it decodes.

The pixel count comes from the header (Pillow's `open` is lazy) and is checked before any decoding, so
a small file that claims a huge size (a decompression bomb) costs nothing. Only then is the image fully
decoded, which catches truncated and corrupt files in the API instead of on a GPU worker.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from app.errors import APIError
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


def open_checked_image(
    data: bytes | BinaryIO, index: int, limits: ImageLimits, field: str = "images"
) -> Image.Image:
    """The decoded image (close it after use) of a valid upload, or an APIError naming `field[index]`."""
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    if not source.seek(0, io.SEEK_END):
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
        try:
            if image.format not in ACCEPTED_FORMATS:
                raise APIError(
                    415,
                    "unsupported_format",
                    f"image {index} is {image.format}; accepted formats are JPEG, PNG and WebP",
                    field,
                    index,
                )
            width, height = image.size
            _check_shape(width, height, index, limits, field)
            try:
                image.load()
            except Exception:
                raise APIError(
                    422, "corrupt_image", f"image {index} is truncated or corrupt", field, index
                ) from None
            return image
        except BaseException:
            image.close()
            raise


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


def stored_reference(source: BinaryIO, size: int, image: Image.Image, side: int) -> bytes:
    """What Redis keeps of a checked upload (`size` bytes, decoded as `image`): the file itself when it is
    within `side` pixels and `side`² bytes, else a downscaled JPEG within both.

    The worker only crops the object from it and resizes that to the model's size, so nothing it needs
    is lost, and a job's inputs in Redis are bounded by MAX_REFERENCES x `side`² bytes."""
    if max(image.size) <= side and size <= side * side:
        source.seek(0)
        return source.read()
    return downscaled_jpeg(image, side, side * side)
