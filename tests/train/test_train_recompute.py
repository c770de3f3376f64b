"""Gradient checkpointing must recompute RSA layers with the reference features of the forward pass."""

from __future__ import annotations

import torch

from model.train.dataset import TripletDataset, collate
from model.train.loop import load_models, trainable_parameters, training_loss
from model.train.recompute import enable_gradient_checkpointing


def gradients(config, checkpointing: str) -> dict[str, torch.Tensor]:
    models = load_models(config)
    trainable_parameters(models.unets)
    if checkpointing == "context-aware":
        enable_gradient_checkpointing(models.unets)
    elif checkpointing == "diffusers-default":
        for unet in (models.unets.ref_unet, models.unets.base_unet):
            unet.enable_gradient_checkpointing()
    models.unets.train()
    dataset = TripletDataset(config.data, config.resolution, seed=config.seed)
    batch = collate([dataset[k] for k in range(2)])
    training_loss(models.unets, models, batch, config).backward()
    return {n: p.grad.clone() for n, p in models.unets.named_parameters() if p.grad is not None}


def test_checkpointed_gradients_equal_plain_gradients(train_config):
    config = train_config.model_copy(update={"reference_drop": 0.0, "caption_drop": 0.0})
    plain = gradients(config, "none")
    checkpointed = gradients(config, "context-aware")
    assert plain.keys() == checkpointed.keys()
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-4, atol=1e-6, msg=name)

    # Without restoring the context, recomputed RSA layers attend without the reference: wrong gradients
    # (or torch refuses because the recomputed graph differs).
    try:
        naive = gradients(config, "diffusers-default")
    except RuntimeError:
        return
    assert any(not torch.allclose(naive[n], g, rtol=1e-4, atol=1e-6) for n, g in plain.items() if n in naive)
