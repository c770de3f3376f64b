"""Attention that also returns its log-sum-exp, and the exact merge of attentions over disjoint keys.

Softmax attention over the union of two key sets is a weighted mix of the attentions over each set:
with outputs O_1, O_2 and log-sum-exps L_1, L_2 (per query and head),
`out = (e^{L_1} O_1 + e^{L_2} O_2) / (e^{L_1} + e^{L_2}) = O_1 + sigmoid(L_2 - L_1) (O_2 - O_1)`.
RSA uses this to attend over the self keys once and over each reference alone, instead of over
`[f; f_ref_i]` once per reference.

PyTorch's fused kernels return the log-sum-exp only through private ops, so each is guarded: when one
is missing or refuses the inputs (dtype, head size, build), a chunked implementation with bounded
memory gives the same numbers, about 2x slower on CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

AttentionWithLse = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
CHUNK_SCORES_BYTES = 64 * 2**20  # fallback: largest score block held at once
_warned: set[str] = set()


def _cpu_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)


def _cuda_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if q.dtype in (torch.float16, torch.bfloat16) and q.shape[-1] <= 256:
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v)[:2]
    else:
        out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True)[:2]
    return out, lse[..., : q.shape[-2]]  # some builds pad the log-sum-exp's length


def fused_kernel(device_type: str) -> AttentionWithLse | None:
    """PyTorch's fused attention-with-log-sum-exp for this device, if this build has one."""
    needed = {
        "cpu": ("_scaled_dot_product_flash_attention_for_cpu",),
        "cuda": ("_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention"),
    }.get(device_type, ())
    if not needed or not all(hasattr(torch.ops.aten, name) for name in needed):
        return None
    return _cpu_kernel if device_type == "cpu" else _cuda_kernel


def chunked_attention_with_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain-math attention (B, H, L, D) with log-sum-exp, a block of queries at a time, in float32."""
    batch, heads, length, dim = q.shape
    keys = k.shape[-2]
    qf = (q.float() * dim**-0.5).reshape(batch * heads, length, dim)
    kt = k.float().expand(batch, heads, keys, dim).reshape(batch * heads, keys, dim).transpose(1, 2)
    vf = v.float().expand(batch, heads, keys, dim).reshape(batch * heads, keys, dim)
    out = torch.empty_like(qf)
    lse = torch.empty(batch * heads, length, device=q.device)
    chunk = max(1, CHUNK_SCORES_BYTES // (4 * batch * heads * keys))
    for start in range(0, length, chunk):
        scores = torch.bmm(qf[:, start : start + chunk], kt)
        peak = scores.amax(-1, keepdim=True)
        scores.sub_(peak).exp_()
        total = scores.sum(-1, keepdim=True)
        block = out[:, start : start + chunk]
        torch.bmm(scores, vf, out=block)
        block.div_(total)
        lse[:, start : start + chunk] = (peak + total.log()).squeeze(-1)
    return out.view(batch, heads, length, dim).to(q.dtype), lse.view(batch, heads, length)


def attention_with_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention of (B, H, L, D) tensors -> (output, log-sum-exp (B, H, L) float32)."""
    kernel = fused_kernel(q.device.type)
    if kernel is not None:
        try:
            out, lse = kernel(q, k, v)
            return out, lse.float()
        except (RuntimeError, NotImplementedError) as exc:  # dtype, shape or build the kernel refuses
            reason = f"{q.device.type}/{q.dtype}/{q.shape[-1]}"
            if reason not in _warned:
                _warned.add(reason)
                log.warning("fused attention with log-sum-exp refused %s (%s); using chunked", reason, exc)
    return chunked_attention_with_lse(q, k, v)


def reference_share(lse_self: torch.Tensor, lse_ref: torch.Tensor) -> torch.Tensor:
    """Weight of the reference keys when self and reference attentions merge: sigmoid(L_ref - L_self)."""
    return torch.sigmoid(lse_ref - lse_self).unsqueeze(-1)


def joint_shares(lse_self: torch.Tensor, lse_refs: torch.Tensor) -> torch.Tensor:
    """Weights of k reference key sets in one attention over [self; ref_1; ...; ref_k] (`concat`).

    lse_self: (..., L); lse_refs: (k, ..., L) -> (k, ..., L, 1); the self part gets 1 - their sum.
    """
    parts = torch.cat([lse_self.unsqueeze(0), lse_refs])
    return parts.softmax(dim=0)[1:].unsqueeze(-1)
