"""Multi-reference pooling (the paper's Eq. 5-8 and its ablations).

Given the plain self-attention output `o` and the per-reference RSA outputs `o_i`, decide per pixel how
much each reference contributes. Kept free of attention code so it can be checked against the equations.
"""

from __future__ import annotations

import torch

from model.config import Pooling


def _norm_softmax(deltas: torch.Tensor) -> torch.Tensor:
    return deltas.float().norm(dim=-1, keepdim=True).softmax(dim=0)


def _at_largest_delta(values: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Per pixel, the entry of `values` (k, B, N, C) whose `deltas` entry has the largest norm."""
    best = deltas.float().norm(dim=-1).argmax(dim=0)  # (B, N)
    index = best.unsqueeze(0).unsqueeze(-1).expand(1, *values.shape[1:])
    return values.gather(0, index).squeeze(0)


def reference_weights(o: torch.Tensor, o_refs: torch.Tensor) -> torch.Tensor:
    """Eq. 6-7: per-pixel softmax over the norms `||o_i - o||`.

    o: (B, N, C); o_refs: (k, B, N, C) -> weights (k, B, N, 1) summing to 1 over k.
    """
    return _norm_softmax(o_refs - o.unsqueeze(0)).to(o.dtype)


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
        return _at_largest_delta(o_refs, delta)
    raise ValueError(f"pooling mode {mode.value!r} is not a per-reference pooling")


def pool_reference_deltas(deltas: torch.Tensor, mode: Pooling | str) -> torch.Tensor:
    """The same pooling written on the differences `d_i = o_i - o` alone: returns `out - o`.

    deltas: (k, B, N, C) -> (B, N, C). The merged attention path produces the differences directly,
    without the rounding of subtracting two nearly equal outputs.
    """
    mode = Pooling(mode)
    if mode is Pooling.softmax:
        return (_norm_softmax(deltas).to(deltas.dtype) * deltas).sum(dim=0)
    if mode is Pooling.average:
        return deltas.mean(dim=0)
    if mode is Pooling.argmax:
        return _at_largest_delta(deltas, deltas)
    raise ValueError(f"pooling mode {mode.value!r} is not a per-reference pooling")
