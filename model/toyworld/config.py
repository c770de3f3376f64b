"""Sizes of a toy-world run: the full benchmark (`bootpig toyworld`) and the reduced scale of the tests."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ToyWorldConfig(BaseModel):
    """Every size and step count of one run; written to DIR/config.json and checked when resuming."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(64, ge=64, multiple_of=16, description="Side of every image (synth/train need >= 64).")
    seed: int = Field(0, ge=0)
    # data banks
    scene_images: int = Field(6000, ge=64, description="Rendered (image, caption, mask) training samples.")
    view_subjects: int = Field(2000, ge=16, description="Subjects of the toy-DINO view bank.")
    views_per_subject: int = Field(4, ge=2)
    # toy networks
    classifier_steps: int = Field(1500, ge=1)
    vae_steps: int = Field(2000, ge=1)
    unet_steps: int = Field(8000, ge=1)
    unet_channels: tuple[int, int, int] = Field((32, 64, 64), description="Base UNet block widths.")
    unet_batch: int = Field(32, ge=1)
    unet_lr: float = Field(1e-3, gt=0)
    unet_judge_every: int = Field(
        2000, ge=0, description="Judge the base UNet's moving average every N steps (0: never)."
    )
    unet_snr_gamma: float | None = Field(
        5.0, gt=0, description="Min-SNR loss weighting of the base UNet (None: plain epsilon loss)."
    )
    unet_trains_text_encoder: bool = Field(
        False,
        description="Train the base model's text encoder (the toy CLIP's text tower) with its UNet, as "
        "latent diffusion trained its text transformer, instead of freezing it as SD does "
        "(docs/toyworld.md).",
    )
    unet_text_time_embedding: bool = Field(
        False,
        description="Add the attention-pooled caption to the base UNet's timestep embedding, so the "
        "caption steers every ResNet block (session 12: no gain at 4,000 steps; docs/toyworld.md).",
    )
    unet_object_weight: float = Field(
        4.0,
        ge=0.0,
        description="Extra loss weight of the base UNet on the object's latent pixels (the renderer's "
        "mask), so its outline is not drowned out by the scene's texture: 4 took the quality bar's shape "
        "accuracy from 56-69 % to 85 % in the same 8,000 steps (run N, docs/toyworld.md); 0: plain loss.",
    )
    clip_steps: int = Field(
        300,
        ge=1,
        description="Contrastive steps of the toy CLIP, whose text tower is also the base model's text "
        "encoder: 1,500 gave base models 66-69 % shape against 56-65 % (docs/toyworld.md); the tables "
        "use 300.",
    )
    clip_view_steps: int = Field(
        300,
        ge=0,
        description="Then train the toy CLIP's image tower on captions and views of one subject, so "
        "CLIP-I sees appearance, which toy captions never name (0: captions only; docs/toyworld.md).",
    )
    dino_steps: int = Field(400, ge=1)
    clipseg_steps: int = Field(1200, ge=1)
    sample_steps: int = Field(
        15, ge=1, description="UniPC steps of every generation (base check, synth, eval)."
    )
    quality_samples: int = Field(
        2, ge=1, description="Base-model samples per (shape, scene) for the quality bar."
    )
    # BootPIG data and training, through `bootpig synth` and `bootpig train`
    synth_count: int = Field(
        3000,
        ge=8,
        description="Captions `bootpig synth` renders (run I: 3,000 beat 1,000 by 4 CLIP-I points).",
    )
    triplet_source: Literal["synth", "renderer", "renderer-views"] = Field(
        "synth",
        description="Training triplets from `bootpig synth` with the toy base model (the recipe), or oracle "
        "triplets drawn by the renderer: reference cut from the target ('renderer') or another view of its "
        "subject ('renderer-views'); a diagnostic (model/toyworld/oracle.py).",
    )
    synth_flags: tuple[str, ...] = Field((), description="Extra `bootpig synth` flags (e.g. mask filter).")
    train_steps: int = Field(
        4500, ge=1, description="`bootpig train` updates (run I: 4,500 beat 3,000 by 5 DINO points)."
    )
    train_batch: int = Field(8, ge=1)
    lr: float = Field(2e-4, gt=0, description="Both BootPIG learning rates (the paper's are for SD's size).")
    train_reference_timestep: int | None = Field(
        250,
        ge=0,
        le=999,
        description="`TrainConfig.reference_timestep`: references noised to this fixed timestep (None: the "
        "paper's shared t, which learned half as much in the toy world: run P in docs/toyworld.md).",
    )
    train_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Other `bootpig train` settings (TrainConfig fields), written over the driver's, e.g. "
        '{"lr_rsa": 2e-5} or {"method": {"reference_key_scale": 2.0}}.',
    )
    train_rotation: float = Field(
        30.0,
        ge=0.0,
        le=180.0,
        description="`AugmentationConfig.rotation` of the references (degrees; the paper: 0). Turned "
        "references gained 1-2 DINO and shape points on the same base model (docs/toyworld.md, run G).",
    )
    train_clean_image_weight_cap: float | None = Field(
        None, gt=0, description="`TrainConfig.clean_image_weight_cap` (None: the paper's plain loss)."
    )
    erasing_ablation: bool = Field(
        False,
        description="Also train with noise-filled random erasing and compare (`--ablation`; it doubles "
        "the training time, which the 60-minute budget does not hold).",
    )
    # evaluation, through `bootpig eval`
    heldout_subjects: int = Field(8, ge=2)
    heldout_views: int = Field(4, ge=2)
    prompts: int = Field(2, ge=1, le=8, description="Prompts (scenes) per held-out subject.")
    images_per_prompt: int = Field(2, ge=1, le=4)
    poolings: tuple[str, ...] = ("softmax", "argmax", "average", "concat")
    eval_schedule: str = Field(
        "once",
        description="`reference_schedule` of the trained rows: 1 (exact) or 'once' at the training's "
        "fixed reference timestep.",
    )
    eval_reference_caption: str = Field(
        "object",
        description="`bootpig eval --reference-caption` of every BootPIG row: 'object' (the training's "
        "'a photo of a [shape]') or 'prompt'.",
    )
    other_schedules: tuple[str, ...] = Field(
        ("1", "5"),
        description="Other `reference_schedule` values evaluated as extra rows (k = 4, softmax): what the "
        "schedule costs or gains in fidelity against the trained rows' `eval_schedule`.",
    )

    def base_unet_training(self) -> dict[str, Any]:
        """`train_unet`'s settings of the base stage, so the stage and the probe train the same way."""
        return {
            "steps": self.unet_steps,
            "batch_size": self.unet_batch,
            "channels": self.unet_channels,
            "lr": self.unet_lr,
            "snr_gamma": self.unet_snr_gamma,
            "train_text_encoder": self.unet_trains_text_encoder,
            "text_time_embedding": self.unet_text_time_embedding,
            "object_weight": self.unet_object_weight,
        }


# What a run folder built before a setting existed used, where that is not the setting's default: the
# behaviour of the code then. Other settings were added with their old behaviour as the default.
BEFORE_IT_EXISTED: dict[str, Any] = {"unet_object_weight": 0.0}


def reduced_config() -> ToyWorldConfig:
    """The smallest run that still passes through every stage (the test suite's)."""
    return ToyWorldConfig(
        scene_images=128,
        view_subjects=16,
        views_per_subject=2,
        classifier_steps=2,
        vae_steps=2,
        unet_steps=2,
        unet_judge_every=1,  # one judged checkpoint (step 1), so the path is exercised
        clip_steps=2,
        clip_view_steps=2,
        dino_steps=2,
        clipseg_steps=2,
        sample_steps=2,
        quality_samples=1,
        synth_count=8,
        # random weights segment nothing reliably: keep every mask so the later stages get triplets
        synth_flags=("--mask-threshold", "0", "--max-area", "1", "--border-margin", "0"),
        train_steps=2,
        train_batch=2,
        heldout_subjects=2,
        heldout_views=2,
        prompts=1,
        images_per_prompt=1,
        poolings=("softmax",),
        other_schedules=("1",),
    )
