"""Fixtures shared by every test: the tiny model (built once per run) and the DreamBooth photos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DREAMBOOTH = Path(os.environ.get("BOOTPIG_DREAMBOOTH_DIR", REPO_ROOT.parent / "shared" / "dreambooth"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-weight model in the real on-disk layout (SD folders + ref_unet/ + base_unet/)."""
    from model.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_model_dir):
    """The tiny model loaded through the same `from_pretrained` path as real weights."""
    from model.pipeline import BootPIGPipeline

    pipe = BootPIGPipeline.from_pretrained(tiny_model_dir, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def dreambooth_dir() -> Path:
    if not DREAMBOOTH.is_dir():
        pytest.skip(f"DreamBooth photos not found at {DREAMBOOTH}")
    return DREAMBOOTH


@pytest.fixture(scope="session")
def dog_photos(dreambooth_dir) -> list[Path]:
    return sorted((dreambooth_dir / "dog").glob("*.jpg"))
