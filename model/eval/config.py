"""Settings of an evaluation run, kept free of heavy imports so `bootpig --help` stays fast."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from model.config import (
    MAX_REFERENCES,
    GenerationConfig,
    Pooling,
    ReferenceSchedule,
    Segmenter,
    field_default,
)

# The DreamBooth paper names DINO ViT-S/16 but not which CLIP it used (see model/eval/metrics.py).
DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_DINO_MODEL = "facebook/dino-vits16"
DEFAULT_IMAGES_PER_PROMPT = 4  # the DreamBooth protocol: 4 images per subject and prompt
BOOTPIG, SD_BASELINE = "bootpig", "sd"


class EvalConfig(BaseModel):
    """Everything that decides which images get generated; a resumed run must match it exactly."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Base model (hub id or folder); None: the demo model.")
    bootpig: str | None = Field(None, description="BootPIG checkpoint folder, if not inside the model.")
    images_per_prompt: int = Field(DEFAULT_IMAGES_PER_PROMPT, ge=1, le=64)
    max_refs: int | None = Field(
        None, ge=1, le=MAX_REFERENCES, description=f"None: all photos (up to {MAX_REFERENCES})."
    )
    steps: int = Field(field_default(GenerationConfig, "steps"), ge=1, le=200)
    resolution: int | None = Field(None, ge=64, le=1024, multiple_of=8, description="None: model's native.")
    seed: int = Field(0, ge=0, description="Base seed; each (subject, prompt, batch) derives its own.")
    segment: Segmenter = Segmenter.tracer
    pooling: Pooling | None = Field(None, description="None: the checkpoint's pooling.")
    guidance_image: float = Field(field_default(GenerationConfig, "guidance_image"), ge=0.0, le=30.0)
    guidance_text: float = Field(field_default(GenerationConfig, "guidance_text"), ge=0.0, le=30.0)
    negative_prompt: str = field_default(GenerationConfig, "negative_prompt")
    reference_schedule: ReferenceSchedule | None = Field(
        None, description="None: the checkpoint's (MethodConfig.generation_defaults)."
    )
    reference_timestep: int | None = Field(None, ge=0, le=999, description="None: the checkpoint's.")
    reference_caption: Literal["prompt", "object"] = Field(
        "prompt",
        description="What the Reference UNet reads: the generation prompt (the service's default), or "
        "'a photo of a [class]', the caption training gives it (TrainConfig.reference_caption='object').",
    )

    def reference_prompt_for(self, class_name: str) -> str | None:
        """The reference prompt of a subject of this class; None: the generation prompt."""
        return f"a photo of a {class_name}" if self.reference_caption == "object" else None
