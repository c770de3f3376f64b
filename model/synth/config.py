"""Settings of data synthesis, env-overridable: `BOOTPIG_SYNTH_<NAME>`, `BOOTPIG_SYNTH_MASK__<NAME>`.

They live here and not in `bootpig/settings.py` because only `bootpig synth` reads them; CLI flags
override them, and the CLI reads its defaults from these models so no number is written twice.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REFERENCE_RESOLUTION = 512  # the resolution the authors' 25 px border margin was stated at


class MaskFilter(BaseModel):
    """When a segmented sample is good enough to train on; sizes are fractions of the image area."""

    threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Segmenter probability above which a pixel belongs to the object."
    )
    border_margin: int = Field(
        25,
        ge=0,
        description="Reject masks reaching this close to the image border, in pixels at 512 px "
        "(scaled with the resolution; the authors' 25 px). Cut-off objects make poor references.",
    )
    min_area: float = Field(0.02, ge=0.0, le=1.0, description="Reject masks smaller than this area fraction.")
    max_area: float = Field(0.8, ge=0.0, le=1.0, description="Reject masks larger than this area fraction.")
    black_level: float = Field(
        4.0,
        ge=0.0,
        le=255.0,
        description="Reject images whose brightest pixel is at most this (NSFW-filtered or failed renders).",
    )

    @model_validator(mode="after")
    def _sizes_ordered(self) -> MaskFilter:
        if self.min_area > self.max_area:
            raise ValueError(f"min_area ({self.min_area}) must not exceed max_area ({self.max_area})")
        return self

    def margin_pixels(self, height: int, width: int) -> int:
        """The border margin at this image size (25 px at 512 px -> 3 px at 64 px)."""
        return round(self.border_margin * min(height, width) / REFERENCE_RESOLUTION)


class SynthSettings(BaseSettings):
    """Defaults of `bootpig synth`: caption source, text-to-image rendering, segmenter and mask filter."""

    model_config = SettingsConfigDict(
        env_prefix="BOOTPIG_SYNTH_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    # --- captions ----------------------------------------------------------------------------
    llm_base_url: str = Field(
        "https://api.openai.com/v1",
        description="OpenAI-compatible API root: POST {base}/chat/completions (OpenAI, vLLM, Ollama...).",
    )
    llm_model: str = Field("gpt-4o-mini", description="Chat model name sent to the endpoint.")
    llm_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("BOOTPIG_SYNTH_LLM_API_KEY", "OPENAI_API_KEY"),
        description="Bearer key of the endpoint (or OPENAI_API_KEY); local servers usually need none.",
    )
    llm_timeout: float = Field(120.0, gt=0, description="Seconds one chat request may take.")
    llm_temperature: float = Field(1.0, ge=0.0, le=2.0, description="Sampling temperature (diversity).")
    captions_per_request: int = Field(50, ge=1, le=500, description="Captions asked for in one LLM call.")
    max_llm_requests: int = Field(
        10_000, ge=1, description="Give up after this many LLM calls (bounds cost when output is unusable)."
    )
    local_llm: str = Field(
        "Qwen/Qwen2.5-1.5B-Instruct", description="Hub id or folder of the local transformers causal LM."
    )
    local_max_new_tokens: int = Field(1024, ge=16, description="Tokens the local LM may write per call.")

    # --- rendering ---------------------------------------------------------------------------
    resolution: int = Field(512, ge=64, le=1024, multiple_of=8, description="Side of the rendered targets.")
    steps: int = Field(50, ge=1, le=200, description="Denoising steps of the text-to-image model.")
    guidance_scale: float = Field(7.5, ge=0.0, le=30.0, description="Classifier-free guidance of rendering.")
    negative_prompt: str = Field(
        "blurry, cropped, out of frame, text, watermark",
        description="Negative prompt of rendering (steers away from cut-off objects).",
    )
    batch_size: int = Field(4, ge=1, le=256, description="Captions rendered and segmented per batch.")

    # --- segmentation ------------------------------------------------------------------------
    segmenter: str = Field(
        "CIDAS/clipseg-rd64-refined", description="Hub id or folder of the CLIPSeg segmentation model."
    )
    mask: MaskFilter = Field(default_factory=MaskFilter, description="Which masks are kept.")
