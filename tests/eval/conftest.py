"""Tiny random-weight CLIP and DINO-style ViT encoders, saved like hub checkpoints (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A `CLIPModel` + `CLIPProcessor` folder: SD's offline tokenizer and a 32 px image processor."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from model.tiny import tiny_clip_text_config, tiny_transformer
    from model.tokenizer import build_clip_tokenizer

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-clip")
    config = CLIPConfig(
        text_config=tiny_clip_text_config(32, layers=1, heads=2),
        vision_config={"image_size": 32, "patch_size": 8, **tiny_transformer(32, layers=1, heads=2)},
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=build_clip_tokenizer()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_dino_dir(tmp_path_factory) -> Path:
    """A `ViTModel` (no pooler, like facebook/dino-vits16) + `ViTImageProcessor` at 32 px."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    from model.tiny import tiny_transformer

    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("tiny-dino")
    config = ViTConfig(image_size=32, patch_size=8, **tiny_transformer(24, layers=1, heads=2))
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoders(tiny_clip_dir, tiny_dino_dir):
    from model.eval.metrics import Encoders

    return Encoders.load(str(tiny_clip_dir), str(tiny_dino_dir), device="cpu", local_files_only=True)
