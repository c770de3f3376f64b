"""Direct transcriptions of the paper's equations, written for clarity rather than speed.

Tests compare the optimised processors against these.
"""

from __future__ import annotations

import torch


def rsa_direct(attn, f: torch.Tensor, f_refs: list[torch.Tensor], key_scale: float = 1.0) -> torch.Tensor:
    """RSA(f, f_ref) = W_o softmax(q(f) [k(f); k(f_ref)]^T / sqrt(d)) [v(f); v(f_ref)], per head."""
    q = attn.to_q(f)
    keys = torch.cat([attn.to_k(f)] + [attn.to_k(r * key_scale) for r in f_refs], dim=1)
    values = torch.cat([attn.to_v(f)] + [attn.to_v(r) for r in f_refs], dim=1)
    heads = attn.heads
    d = q.shape[-1] // heads
    outs = []
    for h in range(heads):
        qh, kh, vh = (t[..., h * d : (h + 1) * d] for t in (q, keys, values))
        weights = torch.softmax(qh @ kh.transpose(1, 2) / d**0.5, dim=-1)
        outs.append(weights @ vh)
    return attn.to_out[0](torch.cat(outs, dim=-1))


def pool_direct(o: torch.Tensor, o_refs: list[torch.Tensor], mode: str) -> torch.Tensor:
    """Eq. 5-8 pixel by pixel: n_i = ||o_i - o||, p = softmax(n), out = o + sum_i p_i (o_i - o)."""
    batch, pixels, _ = o.shape
    out = torch.empty_like(o)
    for b in range(batch):
        for n in range(pixels):
            diffs = [r[b, n] - o[b, n] for r in o_refs]
            norms = torch.stack([d.norm() for d in diffs])
            if mode == "softmax":
                p = torch.softmax(norms, dim=0)
                out[b, n] = o[b, n] + sum(p[i] * diffs[i] for i in range(len(diffs)))
            elif mode == "argmax":
                out[b, n] = o_refs[int(norms.argmax())][b, n]
            elif mode == "average":
                out[b, n] = sum(r[b, n] for r in o_refs) / len(o_refs)
    return out
