"""Reference photo preparation: orientation, foreground cut-out, object on white, square crop.

BootPIG is trained with references that show the object alone on white, so user photos are brought to
the same form: segment the object (TRACER-B7 through carvekit), paste it on white, crop to its box, pad
to a square with white and resize to the model's size.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image, ImageOps

from model.config import Segmenter
from model.errors import SegmenterUnavailable

WHITE = (255, 255, 255)
MASK_THRESHOLD = 128


class ForegroundSegmenter(Protocol):
    """Anything that turns RGB photos into "L" masks of their main object."""

    def __call__(self, images: list[Image.Image]) -> list[Image.Image]: ...


def load_image(source: str | Path | bytes | Image.Image) -> Image.Image:
    """Open an image as RGB with its EXIF orientation applied (phones store photos sideways)."""
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


def object_on_white(image: Image.Image, mask: Image.Image | None, size: int) -> Image.Image:
    """Paste the masked object on white, crop to its box, pad to a white square, resize to `size`."""
    image = image.convert("RGB")
    if mask is not None:
        binary = np.asarray(mask.convert("L").resize(image.size)) >= MASK_THRESHOLD
        if binary.any():
            white = Image.new("RGB", image.size, WHITE)
            image = Image.composite(image, white, Image.fromarray(binary.astype(np.uint8) * 255))
            ys, xs = np.nonzero(binary)
            image = image.crop((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    side = max(image.size)
    square = Image.new("RGB", (side, side), WHITE)
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square.resize((size, size), Image.Resampling.BICUBIC)


class TracerSegmenter:
    """TRACER-B7 (carvekit) loaded from an explicit weights file, never downloaded."""

    def __init__(self, weights_path: str | Path, device: str | torch.device = "cpu", input_size: int = 640):
        weights_path = Path(weights_path).expanduser()
        if not weights_path.is_file():
            raise SegmenterUnavailable(
                f"TRACER-B7 weights not found at {weights_path}. Download tracer_b7.pth (carvekit) to that "
                "path, set BOOTPIG_TRACER_WEIGHTS, or choose segment=none."
            )
        from carvekit.ml.wrap.tracer_b7 import TracerUniversalB7

        self.model = TracerUniversalB7(
            device=str(device), input_image_size=input_size, load_pretrained=False, model_path=weights_path
        )
        state = torch.load(weights_path, map_location=str(device), weights_only=True)
        missing, _ = self.model.load_state_dict(state, strict=False)
        if len(missing) > len(state):
            raise ValueError(
                f"{weights_path} does not hold TRACER-B7 weights ({len(missing)} tensors missing)"
            )
        self.model.eval()

    def __call__(self, images: list[Image.Image]) -> list[Image.Image]:
        return self.model(images)


def prepare_references(
    images: list[Image.Image],
    size: int,
    segment: Segmenter | str = Segmenter.none,
    segmenter: ForegroundSegmenter | None = None,
) -> list[Image.Image]:
    """Bring user photos to the object-on-white squares the Reference UNet expects."""
    if Segmenter(segment) is Segmenter.none:
        return [object_on_white(image, None, size) for image in images]
    if segmenter is None:
        raise ValueError("segment=tracer needs a loaded segmenter")
    masks = segmenter(images)
    return [object_on_white(image, mask, size) for image, mask in zip(images, masks, strict=True)]
