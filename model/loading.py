"""Load the served pipeline: configured weights, the bundled toy-world model, or the loud demo model."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from model.config import DEMO_WARNING
from model.pipeline import BootPIGPipeline
from model.served import ModelKind, public_name
from model.tiny import is_tiny_model, make_tiny_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What is being served, for logs and the API's health output.

    `name`, `kind` and `native_size` are public (/readyz, the web page); `model` and `checkpoint` may be
    paths on the worker's host, shown to operators only.
    """

    model: str
    checkpoint: str | None
    name: str
    kind: ModelKind
    native_size: int
    has_trained_weights: bool
    device: str
    dtype: str

    @property
    def is_demo(self) -> bool:
        """Random weights: its images are noise, which /readyz and the page must say loudly."""
        return self.kind is ModelKind.demo


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
    kind: ModelKind | None = None,
    cuda_graphs: bool = True,
    compile_blocks: bool = False,
) -> tuple[BootPIGPipeline, ModelInfo]:
    """Load base weights + BootPIG weights onto the device; with no model, the demo model.

    `kind` says where `model` came from (`model.served.choose_model`); by default a given model is
    `configured` and None is the demo. A model made by `make_tiny_model` is a demo whatever its source.
    """
    if model is None:
        model, kind = str(ensure_demo_model(demo_model_dir)), ModelKind.demo
    kind = kind or ModelKind.configured
    if kind is not ModelKind.configured:  # the demo and the bundled model are local folders
        local_files_only = True
    if is_tiny_model(model):
        kind = ModelKind.demo
    if kind is ModelKind.demo:
        log.warning(DEMO_WARNING)
    elif kind is ModelKind.toy_world:
        log.info("no model configured: serving the bundled %s (%s)", public_name(model, kind), model)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    pipe = BootPIGPipeline.from_pretrained(
        model, checkpoint, torch_dtype=torch_dtype, local_files_only=local_files_only or None
    ).to(torch_device)
    pipe.set_progress_bar_config(disable=True)
    pipe.use_cuda_graphs = cuda_graphs
    if compile_blocks:
        log.info("compiling %d stateless UNet blocks on first use", pipe.compile_blocks())
    info = ModelInfo(
        model=model,
        checkpoint=checkpoint,
        name=public_name(model, kind),
        kind=kind,
        native_size=pipe.native_size,
        has_trained_weights=pipe.has_trained_weights,
        device=str(torch_device),
        dtype=str(torch_dtype).removeprefix("torch."),
    )
    return pipe, info
