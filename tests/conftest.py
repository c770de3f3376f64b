"""Fixtures shared by every test: the tiny model (built once per run) and the DreamBooth photos."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Real photos shipped with the tests (a small DreamBooth subset, see its README); BOOTPIG_DREAMBOOTH_DIR
# points the tests at another copy with the same layout, such as the full set.
SHIPPED_DREAMBOOTH = Path(__file__).resolve().parent / "data" / "dreambooth"
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def one_torch_thread():
    """Tiny models run faster on one thread, and far faster when other processes share the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
def tiny_clipseg_dir(tmp_path_factory) -> Path:
    """CLIPSeg built from a config with random weights, saved like a hub folder (model + processor)."""
    import torch
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, CLIPSegProcessor, ViTImageProcessor

    from model.tiny import tiny_clip_text_config, tiny_transformer
    from model.tokenizer import build_clip_tokenizer

    config = CLIPSegConfig(
        text_config=tiny_clip_text_config(),
        vision_config={"image_size": 64, "patch_size": 16, **tiny_transformer(32, layers=3, heads=4)},
        projection_dim=32,
        extract_layers=(0, 1, 2),
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-clipseg")
    CLIPSegForImageSegmentation(config).save_pretrained(directory)
    image_processor = ViTImageProcessor(
        size={"height": 64, "width": 64}, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
    )
    CLIPSegProcessor(image_processor=image_processor, tokenizer=build_clip_tokenizer()).save_pretrained(
        directory
    )
    return directory


@pytest.fixture(scope="session")
def dreambooth_dir() -> Path:
    folder = Path(os.environ.get("BOOTPIG_DREAMBOOTH_DIR") or SHIPPED_DREAMBOOTH)
    if not folder.is_dir():
        raise FileNotFoundError(f"BOOTPIG_DREAMBOOTH_DIR={folder} is not a folder")
    return folder


@pytest.fixture(scope="session")
def dog_photos(dreambooth_dir) -> list[Path]:
    return sorted((dreambooth_dir / "dog").glob("*.jpg"))


@pytest.fixture(scope="session")
def toy_model_export(tmp_path_factory) -> Path:
    """A reduced toy-world run exported as the service loads it (what `model/toyworld/assets/model/` will
    hold), built by the real command in its own process on one thread (~20 s of CPU)."""
    root = tmp_path_factory.mktemp("toy-export")
    command = ["toyworld", "--reduced", "--no-progress", "--out", root / "world", "--export", root / "model"]
    result = subprocess.run(
        [sys.executable, "-m", "bootpig.cli", *map(str, command)],
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return root / "model"
