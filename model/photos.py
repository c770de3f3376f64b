"""Opening user photos the way every part of the project needs them (no torch here: the API uses it too)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps

WHITE = (255, 255, 255)


def load_image(source: str | Path | bytes | BinaryIO | Image.Image) -> Image.Image:
    """Open an image as RGB with its EXIF orientation applied (phones store photos sideways) and any
    transparency flattened onto white."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, bytes):
        image = Image.open(io.BytesIO(source))
    else:
        image = Image.open(source)
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def downscaled_jpeg(source: Image.Image, side: int, max_bytes: int) -> bytes:
    """The photo (orientation applied, transparency on white) as an RGB JPEG no larger than `side`
    (longest side) and `max_bytes`; quality steps down only for the rare image still too heavy."""
    image = load_image(source)
    image.thumbnail((side, side), Image.Resampling.BICUBIC, reducing_gap=2.0)
    for quality in (95, 85, 75, 60, 40):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        if buffer.tell() <= max_bytes:
            break
    return buffer.getvalue()
