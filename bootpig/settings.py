"""The one settings object of the project, read by the CLI, the API, the worker and the docs.

Every value can be set by environment variable (`BOOTPIG_<NAME>`, plus the conventional `REDIS_URL`)
or an `.env` file; CLI flags override them. Generation defaults and ranges live in
`model.config.GenerationConfig` and are not repeated here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.config import Segmenter


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOOTPIG_", env_file=".env", extra="ignore")

    # --- model -------------------------------------------------------------------------------
    model: str | None = Field(
        None,
        description="Base model: hub id or local diffusers folder of SD 2.1-base (e.g. "
        "stabilityai/stable-diffusion-2-1-base). Unset: a random-weight demo model is created and served.",
    )
    checkpoint: str | None = Field(
        None, description="BootPIG checkpoint folder with ref_unet/ and base_unet/ (if not inside the model)."
    )
    demo_model_dir: Path = Field(
        Path(".bootpig/demo-model"),
        description="Where the random-weight demo model is written when no model is set.",
    )
    device: str = Field("auto", description="Torch device: auto (cuda when available), cuda, cuda:1, cpu.")
    dtype: str = Field(
        "auto", description="Weights dtype: auto (fp16 on CUDA, fp32 on CPU), fp16, bf16, fp32."
    )
    local_files_only: bool = Field(False, description="Never contact the model hub (offline deployments).")
    segment: Segmenter = Field(
        Segmenter.tracer, description="Default reference segmentation: tracer (TRACER-B7) or none."
    )
    tracer_weights: Path = Field(
        Path("~/.cache/carvekit/checkpoints/tracer_b7/tracer_b7.pth"),
        description="Path of carvekit's tracer_b7.pth; never downloaded at run time.",
    )

    # --- queue -------------------------------------------------------------------------------
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "BOOTPIG_REDIS_URL"),
        description="Redis holding the job queue, inputs and results (REDIS_URL or BOOTPIG_REDIS_URL).",
    )


@lru_cache
def get_settings() -> Settings:
    """Settings read once per process (tests build their own `Settings(...)`)."""
    return Settings()
