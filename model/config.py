"""The one place where the method's defaults and limits live.

CLI flags, API fields, worker jobs and the README read their defaults and ranges from these models,
so a number is never written twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class Pooling(str, Enum):
    """How the outputs of k references are merged inside each RSA layer."""

    softmax = "softmax"  # the paper's Eq. 5-8 (default)
    argmax = "argmax"  # hard choice of the largest-norm reference per pixel (authors' release)
    average = "average"  # ablation: mean of the per-reference outputs
    concat = "concat"  # ablation: one attention over [f; f_ref_1; ...; f_ref_k]


class AttentionImpl(str, Enum):
    """How the RSA layers compute attention; both give the same result (tests hold them to 1e-5)."""

    merged = "merged"  # attend over self keys once and over each reference alone, merge by log-sum-exp
    direct = "direct"  # attend over [f; f_ref_i] per reference: the straightforward reference path


class Segmenter(str, Enum):
    """How the user's object is cut out of a reference photo."""

    tracer = "tracer"  # TRACER-B7 through carvekit (the paper's choice)
    none = "none"  # use the photo as it is (already on white, or for tests)


ONCE_PER_JOB = "once"


def parse_reference_schedule(value: object) -> int | str:
    """A positive step interval or "once"; forms and CLI flags send it as text."""
    if value == ONCE_PER_JOB:
        return ONCE_PER_JOB
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a whole number of steps >= 1 (1 = every step) or {ONCE_PER_JOB!r}")
    return value


ReferenceSchedule = Annotated[
    Annotated[int, Field(ge=1)] | Literal["once"], BeforeValidator(parse_reference_schedule)
]

MAX_REFERENCES = 8
MAX_IMAGES_PER_REQUEST = 4
MAX_PROMPT_CHARS = 1000
RANDOM_SEED_RANGE = 2**31  # seeds drawn for requests that give none: [0, 2**31)
DEMO_WARNING = (
    "NO MODEL CONFIGURED: serving a tiny RANDOM-WEIGHT DEMO MODEL whose images are noise. "
    "Set BOOTPIG_MODEL (and BOOTPIG_CHECKPOINT) to real weights, see the README."
)


class GenerationConfig(BaseModel):
    """Parameters of one generation request; defaults are the paper's inference settings."""

    model_config = ConfigDict(use_enum_values=False, extra="forbid")

    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT_CHARS, description="What to generate.")
    reference_prompt: str | None = Field(
        None,
        max_length=MAX_PROMPT_CHARS,
        description="Caption given to the Reference UNet; defaults to the prompt.",
    )
    negative_prompt: str = Field(
        "", max_length=MAX_PROMPT_CHARS, description="Prompt of the unconditional and image-only branches."
    )
    num_images: int = Field(1, ge=1, le=MAX_IMAGES_PER_REQUEST, description="Images generated per request.")
    seed: int | None = Field(
        None, ge=0, le=2**63 - 1, description="Random seed; chosen at random (and returned) when absent."
    )
    steps: int = Field(50, ge=1, le=200, description="Denoising steps (UniPC).")
    guidance_image: float = Field(5.0, ge=0.0, le=30.0, description="Image guidance scale eta_im (Eq. 4).")
    guidance_text: float = Field(7.5, ge=0.0, le=30.0, description="Text guidance scale eta_txt (Eq. 4).")
    height: int = Field(512, ge=64, le=1024, multiple_of=8, description="Output height in pixels.")
    width: int = Field(512, ge=64, le=1024, multiple_of=8, description="Output width in pixels.")
    pooling: Pooling = Field(Pooling.softmax, description="Multi-reference pooling mode.")
    segment: Segmenter = Field(Segmenter.tracer, description="Reference foreground segmentation.")
    reference_size: int | None = Field(
        None,
        ge=64,
        le=1024,
        multiple_of=8,
        description="Side in pixels of the square reference images given to the Reference UNet; "
        "default: the larger side of the output, as in training (reference and target the same size).",
    )
    reference_schedule: ReferenceSchedule = Field(
        1,
        description="How often the Reference UNet runs: 1 = every step (exact, the paper), m = every m "
        "steps (features reused in between), 'once' = once per job at reference_timestep (fast mode).",
    )
    reference_timestep: int = Field(
        250,
        ge=0,
        le=999,
        description="Timestep the references are noised to when reference_schedule is 'once'.",
    )

    def resolved_reference_size(self) -> int:
        return reference_side(self.height, self.width, self.reference_size)

    def resolved_reference_prompt(self) -> str:
        """The caption the Reference UNet sees: `reference_prompt`, else the prompt."""
        return self.reference_prompt if self.reference_prompt is not None else self.prompt


class MethodConfig(BaseModel):
    """Settings of the method itself that a checkpoint was trained with and inference must match."""

    model_config = ConfigDict(extra="ignore")

    reference_key_scale: float = Field(
        1.0,
        gt=0.0,
        description="Reference features are multiplied by this before the key projection "
        "(the authors' release used 1.1).",
    )
    pooling: Pooling = Field(Pooling.softmax, description="Default pooling mode of this checkpoint.")
    reference_timestep: int | None = Field(
        None,
        ge=0,
        le=999,
        description="The one timestep this checkpoint's references were noised to in training "
        "(`TrainConfig.reference_timestep`; None: the paper's shared timestep). A checkpoint trained so "
        "defaults its requests to reference_schedule 'once' at this timestep: the only references it knows.",
    )

    def generation_defaults(self) -> dict[str, Any]:
        """What a request that leaves them unset gets from this checkpoint (`resolve_generation_config`)."""
        defaults: dict[str, Any] = {"pooling": self.pooling}
        if self.reference_timestep is not None:
            defaults |= {"reference_schedule": "once", "reference_timestep": self.reference_timestep}
        return defaults


def reference_side(height: int, width: int, reference_size: int | None = None) -> int:
    """Side of the square references: `reference_size`, else the output's larger side.

    Training pairs a reference and a target of the same size (`model/train`), so the default keeps
    references at the scale the model learned, and costs no more tokens than the target itself.
    """
    return reference_size if reference_size is not None else max(height, width)


def field_default(model: type[BaseModel], name: str):
    """Default value of a field, so callers (argparse, forms) never restate it."""
    return model.model_fields[name].default


# Request fields whose default depends on the loaded checkpoint (its native size, its trained pooling and
# reference timestep).
MODEL_DEFAULTED = ("height", "width", "pooling", "reference_schedule", "reference_timestep")


def draw_seed() -> int:
    """A fresh seed for a request that gives none; callers return it so the result can be reproduced."""
    return secrets.randbelow(RANDOM_SEED_RANGE)


def resolve_generation_config(
    values: Mapping[str, Any], native_size: int, method: MethodConfig
) -> GenerationConfig:
    """The one place where a request's model-dependent defaults are filled in (worker, CLI, eval).

    `values` are GenerationConfig fields; the MODEL_DEFAULTED ones that are absent or None take the
    checkpoint's: its native size (`pipe.reference_size`) and `pipe.method.generation_defaults()`.
    """
    model_defaults = {"height": native_size, "width": native_size} | method.generation_defaults()
    given = {name: value for name, value in values.items() if not (name in MODEL_DEFAULTED and value is None)}
    return GenerationConfig.model_validate(model_defaults | given)
