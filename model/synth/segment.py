"""Object masks for rendered targets: text-prompted segmentation with CLIPSeg, then quality checks.

Why CLIPSeg (`CLIPSegForImageSegmentation`, e.g. CIDAS/clipseg-rd64-refined) and not Grounding DINO
boxes + SAM masks: the object phrase of a caption goes straight in as the prompt, one small model
(~150M parameters) segments a whole batch of (image, phrase) pairs in a single forward pass, and there
is no box-to-mask hand-off to tune. That keeps 200k samples cheap. Its weakness is a coarse 352 px
heatmap with soft edges; the data does not need crisp edges, because training cuts the reference out
of the target with the mask and augments it, and what matters more is rejecting bad samples, which the
border / area checks below do. The targets are single-object renders on purpose (the caption asks for
one object), so the ambiguity that SAM's point/box prompts resolve hardly arises.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import torch
from PIL import Image

from model.synth.config import MaskFilter
from model.synth.pretrained import PretrainedModel


class RejectReason(str, Enum):
    """Why a rendered sample is not written as a triplet (counted in the run summary)."""

    nsfw = "nsfw"  # the pipeline's safety checker flagged (and blacked out) the image
    black_image = "black_image"  # nothing rendered, e.g. a safety-checked or failed image
    empty_mask = "empty_mask"  # the segmenter found nothing above the threshold
    too_small = "too_small"
    too_large = "too_large"
    touches_border = "touches_border"  # the object is probably cut off by the frame


class ClipSegSegmenter(PretrainedModel):
    """Probability maps of an object phrase in images, at the images' own resolution."""

    def load(self, model: str, device: str | torch.device, torch_dtype: torch.dtype, local_files_only: bool):
        from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

        self.processor = CLIPSegProcessor.from_pretrained(model, local_files_only=local_files_only)
        self.model = CLIPSegForImageSegmentation.from_pretrained(
            model, dtype=torch_dtype, local_files_only=local_files_only
        ).to(device)
        self.model.eval()

    @torch.no_grad()
    def probabilities(self, images: list[Image.Image], phrases: list[str]) -> np.ndarray:
        """(B, H, W) float32 in [0, 1]: how likely each pixel of image b shows phrase b."""
        if len(images) != len(phrases):
            raise ValueError(f"{len(images)} images but {len(phrases)} phrases")
        if len({image.size for image in images}) != 1:
            raise ValueError("all images of a batch must have the same size")
        inputs = self.processor(
            text=phrases, images=images, padding=True, truncation=True, return_tensors="pt"
        ).to(self.model.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        logits = self.model(**inputs).logits.float()
        if logits.ndim == 2:  # some versions squeeze a batch of one
            logits = logits[None]
        width, height = images[0].size
        logits = torch.nn.functional.interpolate(logits[:, None], size=(height, width), mode="bilinear")
        return logits[:, 0].sigmoid().cpu().numpy()


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The biggest 8-connected blob of a boolean mask: the object, without stray speckles elsewhere."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest


def best_mask(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean object mask from one probability map (pixels strictly above the threshold)."""
    return largest_component(probabilities > threshold)


def is_black(image: np.ndarray, black_level: float) -> bool:
    return float(image.max(initial=0)) <= black_level


def touches_border(mask: np.ndarray, margin: int) -> bool:
    """Whether the mask has a pixel within `margin` px of an edge (margin 0: never)."""
    if margin <= 0:
        return False
    return bool(
        mask[:margin].any() or mask[-margin:].any() or mask[:, :margin].any() or mask[:, -margin:].any()
    )


def check_sample(image: np.ndarray, mask: np.ndarray, rules: MaskFilter) -> RejectReason | None:
    """None when (image, mask) is a good triplet, otherwise the first reason it is not."""
    if is_black(image, rules.black_level):
        return RejectReason.black_image
    area = float(mask.mean()) if mask.size else 0.0
    if area == 0.0:
        return RejectReason.empty_mask
    if area < rules.min_area:
        return RejectReason.too_small
    if area > rules.max_area:
        return RejectReason.too_large
    if touches_border(mask, rules.margin_pixels(*mask.shape[:2])):
        return RejectReason.touches_border
    return None
