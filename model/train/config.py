"""`TrainConfig`: every setting of a training run, with the paper's values as defaults.

One config file type (YAML, which also reads JSON) holds any subset of these fields; command-line
flags override it. The resolved config is written next to every exported checkpoint
(`train_config.json`) so the weights always say how they were made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from model.config import MethodConfig


class AugmentationConfig(BaseModel):
    """How the reference is cut out of the target each step (the paper: no augmentation hurts badly)."""

    model_config = ConfigDict(extra="forbid")

    min_area: float = Field(
        0.2,
        gt=0.0,
        le=1.0,
        description="Smallest area of the resized object, as a fraction of the largest size that fits the "
        "canvas; the area is drawn uniformly from [min_area, 1].",
    )
    hflip: float = Field(0.5, ge=0.0, le=1.0, description="Probability of a horizontal flip.")
    rotation: float = Field(
        0.0,
        ge=0.0,
        le=180.0,
        description="Turn the object by an angle drawn uniformly from [-rotation, rotation] degrees "
        "(0: never, as the paper), so the reference cannot give the target's exact silhouette.",
    )
    color_jitter: float = Field(
        0.1, ge=0.0, le=1.0, description="Probability of colour jitter (authors' release: 0.1)."
    )
    random_erasing: float = Field(
        0.4, ge=0.0, le=1.0, description="Probability of erasing a random rectangle (authors' release: 0.4)."
    )
    erasing_fill: Literal["white", "noise"] = Field(
        "white",
        description="What an erased rectangle is filled with: the references' white background, or "
        "random noise (torchvision's default, which puts colours that are not the object's on the object).",
    )


class TrainConfig(BaseModel):
    """Settings of `bootpig train`; defaults are the paper's (Section 3.3 and Algorithm 1)."""

    model_config = ConfigDict(extra="forbid")

    # --- inputs and outputs ------------------------------------------------------------------
    model: str = Field(..., description="Base model: hub id or diffusers folder of SD 2.1-base.")
    data: Path = Field(..., description="Triplet folder written by `bootpig synth`.")
    output: Path = Field(..., description="Where checkpoints, exports and logs go.")
    init_bootpig: str | None = Field(
        None,
        description="Start from these BootPIG weights (folder with ref_unet/ and base_unet/). Default: the "
        "model's own ref_unet/ and base_unet/ when present, else two copies of its unet/ (the paper).",
    )
    local_files_only: bool = Field(False, description="Never contact the model hub.")

    # --- data --------------------------------------------------------------------------------
    resolution: int = Field(512, ge=64, multiple_of=8, description="Side of targets and references.")
    reference_caption: Literal["object", "full"] = Field(
        "object",
        description="Caption of the Reference UNet: 'a photo of a [object]' or the target's full caption.",
    )
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    caption_drop: float = Field(0.15, ge=0.0, le=1.0, description="P(base caption -> empty prompt).")
    reference_drop: float = Field(
        0.15, ge=0.0, le=1.0, description="P(no reference: plain self-attention in the Base UNet)."
    )
    reference_timestep: int | None = Field(
        None,
        ge=0,
        le=999,
        description="Noise every reference to this timestep instead of the target's (the paper: same t). "
        "Matches inference's fast mode `reference_schedule='once'` at the same `reference_timestep`.",
    )
    snr_gamma: float | None = Field(
        None,
        gt=0.0,
        description="Min-SNR loss weighting (Hang et al. 2023): weight each sample by min(SNR, gamma) / SNR "
        "(epsilon) or / (SNR + 1) (v-prediction). None: the paper's plain loss.",
    )
    clean_image_weight_cap: float | None = Field(
        None,
        gt=0.0,
        description="Weight each sample by the error of its predicted clean image instead of its noise, "
        "min(1/SNR, cap) for epsilon (min(1/(SNR + 1), cap) for v): the noisy timesteps, where only a "
        "reference can tell the subject's look, carry the loss. None: the paper's plain loss.",
    )
    num_workers: int = Field(4, ge=0, description="Data loader worker processes per training process.")

    # --- optimisation ------------------------------------------------------------------------
    batch_size: int = Field(64, ge=1, description="Samples per update, over all processes.")
    micro_batch_size: int = Field(
        4,
        ge=1,
        description="Samples per forward pass and process; gradient accumulation makes up the rest "
        "(accumulation steps = batch_size / (micro_batch_size * processes)).",
    )
    max_steps: int = Field(10_000, ge=1, description="Optimizer updates.")
    lr_reference: float = Field(5e-6, gt=0.0, description="Learning rate of the Reference UNet.")
    lr_rsa: float = Field(1e-6, gt=0.0, description="Learning rate of the Base UNet's attn1 (RSA) weights.")
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(1e-2, ge=0.0)
    adam_epsilon: float = Field(1e-8, gt=0.0)
    max_grad_norm: float = Field(1.0, gt=0.0, description="Gradient-norm clipping.")
    lr_scheduler: str = Field("constant", description="diffusers `get_scheduler` name.")
    lr_warmup_steps: int = Field(0, ge=0)
    seed: int = Field(
        0, ge=0, description="Data order, augmentation, drops, timesteps and noise derive from it."
    )

    # --- hardware ----------------------------------------------------------------------------
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on CUDA, none on CPU."
    )
    gradient_checkpointing: bool | None = Field(None, description="Default: on when training on CUDA.")

    # --- checkpoints and logs ----------------------------------------------------------------
    checkpoint_every: int = Field(1000, ge=1, description="Save and export every N updates.")
    checkpoints_kept: int = Field(3, ge=1, description="Newest checkpoints kept; older ones are deleted.")
    resume: str | None = Field(
        None, description="'latest' (newest checkpoint in output; fresh start if none) or a checkpoint path."
    )
    tensorboard: bool = Field(False, description="Write TensorBoard logs to <output>/logs.")
    log_every: int = Field(10, ge=1, description="Log metrics every N updates.")

    method: MethodConfig = Field(
        default_factory=MethodConfig, description="Method settings trained with (bootpig_config.json)."
    )

    @model_validator(mode="after")
    def _one_loss_weighting(self) -> TrainConfig:
        if self.snr_gamma is not None and self.clean_image_weight_cap is not None:
            raise ValueError("set at most one of snr_gamma and clean_image_weight_cap")
        return self

    @model_validator(mode="after")
    def _batch_divides(self) -> TrainConfig:
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of micro_batch_size {self.micro_batch_size}"
            )
        return self

    def accumulation_steps(self, num_processes: int) -> int:
        """Micro-batches per update on each process."""
        per_pass = self.micro_batch_size * num_processes
        if self.batch_size % per_pass:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of micro_batch_size x processes = {per_pass}"
            )
        return self.batch_size // per_pass


def load_train_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Read a YAML/JSON config file (optional) and apply overrides whose value is not None."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path} must hold a mapping of settings")
        values.update(loaded)
    values.update({key: value for key, value in overrides.items() if value is not None})
    return TrainConfig.model_validate(values)
