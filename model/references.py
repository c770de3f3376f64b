"""Reference photo preparation: orientation, foreground cut-out, object on white, square crop.

BootPIG is trained with references that show the object alone on white, so user photos are brought to
the same form: segment the object (TRACER-B7 through carvekit), paste it on white, crop to its box, resize
it to fit the model's size and pad it to a square with white.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from PIL import Image

from model.config import Segmenter
from model.errors import SegmenterUnavailable
from model.photos import WHITE, load_image

__all__ = ["load_image", "object_on_white", "prepare_references", "TracerSegmenter", "bounded_copy"]

MASK_THRESHOLD = 128
TRACER_INPUT_MARGIN = 2  # TRACER's input is shrunk to at most this many times its network size first


class ForegroundSegmenter(Protocol):
    """Anything that turns RGB photos into "L" masks of their main object."""

    def __call__(self, images: list[Image.Image]) -> list[Image.Image]: ...


def object_on_white(image: Image.Image, mask: Image.Image | None, size: int) -> Image.Image:
    """Paste the masked object on white, crop to its box, resize to fit `size`, pad to a white square.

    The crop is resized before it is padded, so memory follows the output (`size`²), never `max(w, h)²`:
    a 65500 x 610 photo must not become a 65500² canvas. `mask` may have any size; it is scaled to the
    image."""
    image = image if image.mode == "RGB" else image.convert("RGB")
    box: tuple[float, float, float, float] = (0, 0, image.width, image.height)
    alpha = None
    if mask is not None:
        binary = mask.convert("L").point(lambda value: 255 if value >= MASK_THRESHOLD else 0)
        mask_box = binary.getbbox()
        if mask_box is not None:
            sx, sy = image.width / binary.width, image.height / binary.height
            box = (mask_box[0] * sx, mask_box[1] * sy, mask_box[2] * sx, mask_box[3] * sy)
            alpha = (binary, mask_box)
    width, height = box[2] - box[0], box[3] - box[1]
    scale = size / max(width, height)
    fit = (max(1, min(size, round(width * scale))), max(1, min(size, round(height * scale))))
    content = image.resize(fit, Image.Resampling.BICUBIC, box=box)
    if alpha is not None:
        binary, mask_box = alpha
        weights = binary.resize(fit, Image.Resampling.BILINEAR, box=mask_box)
        content = Image.composite(content, Image.new("RGB", fit, WHITE), weights)
    square = Image.new("RGB", (size, size), WHITE)
    square.paste(content, ((size - fit[0]) // 2, (size - fit[1]) // 2))
    return square


def bounded_copy(image: Image.Image, longest_side: int) -> Image.Image:
    """A copy no longer than `longest_side` on either side (the image itself when it already fits)."""
    if max(image.size) <= longest_side:
        return image
    scale = longest_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


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
        self.input_size = input_size

    def __call__(self, images: list[Image.Image]) -> list[Image.Image]:
        """Masks the size of `images`, computed on copies no larger than TRACER's input.

        carvekit turns the whole photo into a float tensor before resizing it to `input_size` (12 bytes
        per pixel, twice); shrinking first keeps that at the network's size and loses nothing it sees."""
        side = TRACER_INPUT_MARGIN * self.input_size
        masks = self.model([bounded_copy(image, side).convert("RGB") for image in images])
        return [
            mask.resize(image.size, Image.Resampling.BILINEAR)
            for mask, image in zip(masks, images, strict=True)
        ]


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
