"""The base model's quality bar: sample every (shape, scene) prompt and let the classifier judge.

Shared by the `base_check` stage and `benchmarks/toyworld_base_probe.py` (which judges checkpoints of a
long base-model run), so both measure the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from model.toyworld.world import PLACEMENTS, SCENE_NAMES, SHAPES, caption


@dataclass
class QualityResult:
    shape_accuracy: float  # fraction of samples whose prompted shape the classifier recognises
    scene_accuracy: float
    shape_accuracy_by_shape: dict[str, float]  # where the misses are: shapes with a close neighbour fail
    images: list[Image.Image]  # in prompt order: shape-major, scene-minor, repeated `samples` times


def quality_prompts(samples: int) -> list[tuple[str, str, str]]:
    """(shape, scene, caption) for every pair, `samples` times; placements vary along the table."""
    return [
        (shape, scene, caption(shape, scene, PLACEMENTS[(i + j) % len(PLACEMENTS)]))
        for i, shape in enumerate(SHAPES)
        for j, scene in enumerate(SCENE_NAMES)
    ] * samples


@torch.no_grad()
def quality_bar(
    pipe, classifier, samples: int, steps: int, seed: int, guidance_scale: float = 7.5
) -> QualityResult:
    """Sample `pipe` (a text-to-image pipeline) on every prompt and classify the images."""
    prompts = quality_prompts(samples)
    images: list[Image.Image] = []
    for start in range(0, len(prompts), 16):
        batch = prompts[start : start + 16]
        images += pipe(
            [p for _, _, p in batch],
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            generator=torch.Generator().manual_seed(seed + start),
        ).images
    shapes, scenes = classifier.predict(images)
    shape_right = np.array([s == p[0] for s, p in zip(shapes, prompts, strict=True)])
    prompted = np.array([p[0] for p in prompts])
    return QualityResult(
        shape_accuracy=float(shape_right.mean()),
        scene_accuracy=float(np.mean([s == p[1] for s, p in zip(scenes, prompts, strict=True)])),
        shape_accuracy_by_shape={shape: float(shape_right[prompted == shape].mean()) for shape in SHAPES},
        images=images,
    )


def judge_unet(vae, text_encoder, unet, classifier, steps: int, seed: int) -> QualityResult:
    """The quality bar (one sample per prompt) of UNet weights mid-training, e.g. a moving average."""
    from model.tiny import sd_pipeline
    from model.toyworld.encoders import toy_tokenizer

    pipe = sd_pipeline(vae, text_encoder, unet, toy_tokenizer())
    pipe.set_progress_bar_config(disable=True)
    was_training = unet.training
    try:
        return quality_bar(pipe, classifier, 1, steps, seed)
    finally:
        unet.train(was_training)
