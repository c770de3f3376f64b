"""Multi-reference pooling (the paper's Eq. 5-8 and its ablations).

Given the plain self-attention output `o` and the per-reference RSA outputs `o_i`, decide per pixel how
much each reference contributes. Kept free of attention code so it can be checked against the equations.
"""

from __future__ import annotations

import torch

from model.config import Pooling


def reference_weights(o: torch.Tensor, o_refs: torch.Tensor) -> torch.Tensor:
    """Eq. 6-7: per-pixel softmax over the norms `||o_i - o||`.

    o: (B, N, C); o_refs: (k, B, N, C) -> weights (k, B, N, 1) summing to 1 over k.
    """
    norms = (o_refs - o.unsqueeze(0)).float().norm(dim=-1, keepdim=True)
    return norms.softmax(dim=0).to(o.dtype)


def pool_reference_outputs(o: torch.Tensor, o_refs: torch.Tensor, mode: Pooling | str) -> torch.Tensor:
    """Merge k reference outputs into one (B, N, C) tensor.

    `concat` is not a pooling of separate outputs (it is one attention over all references) and is
    handled by the attention processor.
    """
    mode = Pooling(mode)
    delta = o_refs - o.unsqueeze(0)
    if mode is Pooling.softmax:
        return o + (reference_weights(o, o_refs) * delta).sum(dim=0)
    if mode is Pooling.average:
        return o_refs.mean(dim=0)
    if mode is Pooling.argmax:
        best = delta.float().norm(dim=-1).argmax(dim=0)  # (B, N)
        index = best.unsqueeze(0).unsqueeze(-1).expand(1, *o.shape)
        return o_refs.gather(0, index).squeeze(0)
    raise ValueError(f"pooling mode {mode.value!r} is not a per-reference pooling")
