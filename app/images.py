"""Check an uploaded reference image before it is queued: format, pixel count, and that it decodes.

The pixel count comes from the header (Pillow's `open` is lazy) and is checked before any decoding, so
a small file that claims a huge size (a decompression bomb) costs nothing. Only then is the image fully
decoded, which catches truncated and corrupt files in the API instead of on a GPU worker.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from app.errors import APIError

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def check_image(data: bytes, index: int, max_pixels: int, field: str = "images") -> tuple[str, int, int]:
    """Return (format, width, height) of a valid image, or raise an APIError naming `field[index]`."""
    if not data:
        raise APIError(422, "empty_file", f"image {index} is empty", field, index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise APIError(415, "not_an_image", f"image {index} is not an image file", field, index) from None
        except Image.DecompressionBombError:
            raise _too_many_pixels(index, max_pixels, field) from None
        except Exception:
            raise APIError(422, "corrupt_image", f"image {index} cannot be read", field, index) from None
        with image:
            if image.format not in ACCEPTED_FORMATS:
                raise APIError(
                    415,
                    "unsupported_format",
                    f"image {index} is {image.format}; accepted formats are JPEG, PNG and WebP",
                    field,
                    index,
                )
            width, height = image.size
            if width * height > max_pixels:
                raise _too_many_pixels(index, max_pixels, field)
            try:
                image.load()
            except Exception:
                raise APIError(
                    422, "corrupt_image", f"image {index} is truncated or corrupt", field, index
                ) from None
            return image.format, width, height


def _too_many_pixels(index: int, max_pixels: int, field: str) -> APIError:
    return APIError(
        413,
        "too_many_pixels",
        f"image {index} has more than {max_pixels:,} pixels (width x height)",
        field,
        index,
    )
