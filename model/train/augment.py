"""The training reference: the target's object cut out with its mask, augmented, on white.

Algorithm 1 of the paper builds the reference from the target at every step. Without augmentation the
Reference UNet learns to copy the object pixel-for-pixel at its position in the target, so the object
is resized (area drawn from [min_area, 1] of the largest size that fits), moved to a random position,
flipped, optionally turned by a small angle, and sometimes colour-jittered or partly erased (with white,
the background of references).

All randomness comes from torch's global generator; the dataset seeds it per sample inside
`torch.random.fork_rng`, which makes every reference a pure function of (seed, sample number).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from model.references import MASK_THRESHOLD, WHITE
from model.train.config import AugmentationConfig

# Colour jitter strengths: mild, so the object keeps its identity (the release only gives the probability).
COLOR_JITTER = v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.03)


class EmptyMaskError(ValueError):
    """The mask marks no object pixel, so there is nothing to cut out."""


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)


def square_resize(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to `size` and centre-crop to a square (targets are usually square already)."""
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def cut_out(image: Image.Image, mask: Image.Image) -> tuple[Image.Image, Image.Image]:
    """The object's bounding box of `image` and of the (soft) mask, used later as alpha."""
    alpha = mask.convert("L").resize(image.size)
    binary = np.asarray(alpha) >= MASK_THRESHOLD
    if not binary.any():
        raise EmptyMaskError("mask is empty")
    ys, xs = np.nonzero(binary)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return image.convert("RGB").crop(box), alpha.crop(box)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


def _rotated(obj: Image.Image, alpha: Image.Image, degrees: float) -> tuple[Image.Image, Image.Image]:
    """Object and alpha turned by `degrees`, cropped to the turned object's box."""
    obj = obj.rotate(degrees, Image.Resampling.BICUBIC, expand=True, fillcolor=WHITE)
    alpha = alpha.rotate(degrees, Image.Resampling.BILINEAR, expand=True, fillcolor=0)
    box = alpha.point(lambda a: 255 if a >= MASK_THRESHOLD else 0).getbbox() or (0, 0, *alpha.size)
    return obj.crop(box), alpha.crop(box)


def augmented_reference(
    image: Image.Image, mask: Image.Image, size: int, augmentation: AugmentationConfig
) -> torch.Tensor:
    """The reference as a (3, size, size) tensor in [0, 1]: object on white, resized, moved, flipped, ..."""
    obj, alpha = cut_out(image, mask)
    if torch.rand(()).item() < augmentation.hflip:
        obj, alpha = (
            obj.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            alpha.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        )
    if augmentation.rotation > 0:  # drawn only when enabled, so other settings keep their samples
        obj, alpha = _rotated(obj, alpha, _uniform(-augmentation.rotation, augmentation.rotation))

    largest = size / max(obj.size)
    scale = largest * math.sqrt(_uniform(augmentation.min_area, 1.0))
    width, height = (min(size, max(1, round(side * scale))) for side in obj.size)
    obj = obj.resize((width, height), Image.Resampling.BICUBIC)
    alpha = alpha.resize((width, height), Image.Resampling.BILINEAR)
    left = int(torch.randint(0, size - width + 1, ()).item())
    top = int(torch.randint(0, size - height + 1, ()).item())
    canvas = Image.new("RGB", (size, size), WHITE)
    canvas.paste(obj, (left, top), alpha)

    reference = to_tensor(canvas)
    if torch.rand(()).item() < augmentation.color_jitter:
        reference = COLOR_JITTER(reference)
    if torch.rand(()).item() < augmentation.random_erasing:
        fill = 1.0 if augmentation.erasing_fill == "white" else "random"
        reference = v2.RandomErasing(p=1.0, value=fill)(reference)
    return reference
