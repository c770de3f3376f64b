"""Targets: each caption rendered by a diffusers text-to-image model (SD 2.1 in the paper), in batches.

Every sample has its own seed and its own CPU generator, so a sample's image depends only on
(model, caption, seed, settings), not on which batch or shard or machine rendered it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from model.synth.pretrained import PretrainedModel


def sample_seed(base_seed: int, index: int) -> int:
    """A well-mixed 63-bit seed per (run seed, sample index): neighbours and runs do not correlate."""
    state = np.random.SeedSequence([base_seed, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


@dataclass
class RenderOutput:
    images: list[Image.Image]
    nsfw: list[bool]


class TextToImageRenderer(PretrainedModel):
    """Wraps `AutoPipelineForText2Image` for any hub id or local diffusers folder."""

    def load(self, model: str, device: str | torch.device, torch_dtype: torch.dtype, local_files_only: bool):
        from diffusers import AutoPipelineForText2Image

        self.pipe = AutoPipelineForText2Image.from_pretrained(
            model, dtype=torch_dtype, local_files_only=local_files_only
        ).to(device)
        self.pipe.set_progress_bar_config(disable=True)

    def render(
        self,
        prompts: list[str],
        seeds: list[int],
        *,
        resolution: int,
        steps: int,
        guidance_scale: float,
        negative_prompt: str = "",
    ) -> RenderOutput:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        output = self.pipe(
            prompt=prompts,
            negative_prompt=[negative_prompt] * len(prompts) if negative_prompt else None,
            height=resolution,
            width=resolution,
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            generator=generators,
            output_type="pil",
        )
        flags = getattr(output, "nsfw_content_detected", None) or [False] * len(prompts)
        return RenderOutput(images=list(output.images), nsfw=[bool(flag) for flag in flags])
