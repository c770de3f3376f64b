"""One generation request end to end: prepare references, seed, run the pipeline.

The CLI and the queue worker both call `generate`, so a request means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from model.attention import ReferenceFeatures
from model.config import GenerationConfig, Segmenter, draw_seed
from model.errors import SegmenterUnavailable
from model.pipeline import BootPIGPipeline
from model.references import ForegroundSegmenter, TracerSegmenter, prepare_references


@dataclass
class GenerationResult:
    images: list[Image.Image]
    seed: int
    references: list[Image.Image]
    # Features of reference_schedule="once", reusable by the next job of the same subject (see `generate`).
    reference_features: ReferenceFeatures | None = None


def choose_seed(seed: int | None) -> int:
    """The request's seed, or a fresh random one that is returned so the result can be reproduced."""
    return seed if seed is not None else draw_seed()


class SegmenterCache:
    """Loads TRACER once, on first use: requests with segment=none never pay for it."""

    def __init__(self, weights_path: str | Path, device: str | torch.device = "cpu"):
        self.weights_path, self.device = weights_path, device
        self._segmenter: ForegroundSegmenter | None = None

    def get(self) -> ForegroundSegmenter:
        if self._segmenter is None:
            self._segmenter = TracerSegmenter(self.weights_path, self.device)
        return self._segmenter


def generate(
    pipe: BootPIGPipeline,
    reference_images: list[Image.Image],
    config: GenerationConfig,
    segmenters: SegmenterCache | None = None,
    callback: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    reference_features: ReferenceFeatures | None = None,
) -> GenerationResult:
    """Run one request; the seed drives a CPU generator so results match across devices.

    `reference_features`: with `reference_schedule="once"`, the `reference_features` of an earlier
    result for the same photos, reference prompt, reference size and timestep; the references are
    then neither segmented nor run through the Reference UNet.
    """
    references: list[Image.Image] = []
    if reference_features is None:
        segmenter = None
        if config.segment is Segmenter.tracer:
            if segmenters is None:
                raise SegmenterUnavailable(
                    "segment=tracer needs TRACER weights; pass segment=none to skip segmentation"
                )
            segmenter = segmenters.get()
        references = prepare_references(
            reference_images, config.resolved_reference_size(), config.segment, segmenter
        )
    seed = choose_seed(config.seed)
    result = pipe(
        config.prompt,
        references,
        reference_prompt=config.resolved_reference_prompt(),
        negative_prompt=config.negative_prompt,
        num_images=config.num_images,
        generator=torch.Generator("cpu").manual_seed(seed),
        height=config.height,
        width=config.width,
        steps=config.steps,
        guidance_image=config.guidance_image,
        guidance_text=config.guidance_text,
        pooling=config.pooling,
        reference_size=config.resolved_reference_size(),
        reference_schedule=config.reference_schedule,
        reference_timestep=config.reference_timestep,
        reference_features=reference_features,
        callback=callback,
        should_cancel=should_cancel,
    )
    return GenerationResult(
        images=result.images,
        seed=seed,
        references=references,
        reference_features=result.reference_features,
    )
