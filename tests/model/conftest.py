"""Fixtures of the model tests: real self-attention inputs of the tiny model's layers."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def layer_inputs(tiny_pipeline):
    """Real self-attention inputs of every layer, recorded from one Reference UNet pass."""
    unets = tiny_pipeline.unets
    torch.manual_seed(0)
    latents = torch.randn(2, 4, 8, 8)
    embeds = torch.randn(1, 77, 32)
    with torch.no_grad():
        feats = unets.reference_features(latents.unsqueeze(1), torch.tensor([500]), embeds)
    return {name: f[:, 0] for name, f in feats.items()}  # name -> (2, N, C): two different inputs
