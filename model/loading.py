"""Load the served pipeline from settings: real weights, or the loud random-weight demo model."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from model.config import DEMO_WARNING
from model.pipeline import BootPIGPipeline
from model.tiny import is_tiny_model, make_tiny_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What is being served, for logs and the API's health output."""

    model: str
    checkpoint: str | None
    is_demo: bool
    has_trained_weights: bool
    device: str
    dtype: str


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    names = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in names:
        raise ValueError(f"dtype must be auto, fp16, bf16 or fp32, not {dtype!r}")
    return names[dtype]


def ensure_demo_model(directory: str | Path) -> Path:
    directory = Path(directory).expanduser()
    if not (directory / "model_index.json").is_file():
        make_tiny_model(directory)
    return directory


def load_pipeline(
    model: str | None,
    checkpoint: str | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    demo_model_dir: str | Path = ".bootpig/demo-model",
    local_files_only: bool = False,
) -> tuple[BootPIGPipeline, ModelInfo]:
    """Load base weights + BootPIG weights onto the device; with no model, the demo model."""
    is_demo = model is None
    if is_demo:
        model = str(ensure_demo_model(demo_model_dir))
        local_files_only = True
        log.warning(DEMO_WARNING)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    pipe = BootPIGPipeline.from_pretrained(
        model, checkpoint, torch_dtype=torch_dtype, local_files_only=local_files_only or None
    ).to(torch_device)
    pipe.set_progress_bar_config(disable=True)
    is_demo = is_demo or is_tiny_model(model)
    info = ModelInfo(
        model=model,
        checkpoint=checkpoint,
        is_demo=is_demo,
        has_trained_weights=pipe.has_trained_weights,
        device=str(torch_device),
        dtype=str(torch_dtype).removeprefix("torch."),
    )
    return pipe, info
