"""Run one Base-UNet RSA layer on explicit features, with either attention implementation."""

from __future__ import annotations

import torch

from model.attention import ReferenceAttnProcessor, ReferenceContext
from model.config import AttentionImpl


def rsa(attn, name, f, features, pooling="softmax", rows=None, key_scale=1.0, impl=AttentionImpl.merged):
    """Output of the RSA layer `name` for hidden states f (B, N, C) and features (k, R, M, C)."""
    ctx = ReferenceContext(impl=AttentionImpl(impl))
    proc = ReferenceAttnProcessor(name, ctx)
    with ctx.inject({name: features}, rows=rows, pooling=pooling, key_scale=key_scale), torch.no_grad():
        return proc(attn, f)
