"""Which model a deployment serves when settings name none, and what it is called in public.

Decided here without torch, because the API (which never loads a model) needs the same answer as the
worker: the worker to load it, the API to find the served folder's `examples/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

MODEL_INDEX = "model_index.json"
TOY_WORLD_NAME = "toy-world BootPIG, 64 px, trained on a CPU"
DEMO_NAME = "random-weight demo model"


class ModelKind(str, Enum):
    """Where the served model comes from; public in /readyz, so it never carries a path."""

    configured = "configured"  # BOOTPIG_MODEL: a hub id or a folder
    toy_world = "toy-world"  # nothing configured: the toy-world model bundled with the source
    demo = "demo"  # random weights, images are noise (nothing configured and nothing bundled)


@dataclass(frozen=True)
class ModelChoice:
    """The model settings select: `source` for `from_pretrained` (None: the demo model, made on load)."""

    source: str | None
    kind: ModelKind

    def local_folder(self) -> Path | None:
        """The model's folder on this machine; None for a hub id or the not yet created demo model."""
        if self.source is None:
            return None
        folder = Path(self.source).expanduser()
        return folder if folder.is_dir() else None


def is_model_folder(folder: Path) -> bool:
    return (folder / MODEL_INDEX).is_file()


def choose_model(model: str | None, bundled_dir: Path) -> ModelChoice:
    """The default rule: the configured model; else the bundled folder if it holds a model; else the demo."""
    if model is not None:
        return ModelChoice(model, ModelKind.configured)
    if is_model_folder(bundled_dir):
        return ModelChoice(str(bundled_dir), ModelKind.toy_world)
    return ModelChoice(None, ModelKind.demo)


def public_name(source: str, kind: ModelKind) -> str:
    """A name safe for public endpoints: a hub id or a folder's last component, never a full path."""
    if kind is ModelKind.toy_world:
        return TOY_WORLD_NAME
    if kind is ModelKind.demo:
        return DEMO_NAME
    folder = Path(source).expanduser()
    return folder.resolve().name if folder.is_dir() else source
