"""Reference Self-Attention (RSA) as diffusers attention processors.

Two small processors share one `ReferenceContext`:

* `ReferenceRecorderProcessor` sits on every `attn1` of the Reference UNet. It stores its input (the
  hidden states after `norm1`) under its module name, then runs ordinary self-attention.
* `ReferenceAttnProcessor` sits on every `attn1` of the Base UNet. When the context holds reference
  features for its module name it attends over `[f; f_ref]` with its own weights (and pools over k
  references); otherwise it is plain self-attention.

State travels through the shared context object rather than `cross_attention_kwargs`, because diffusers
hands those kwargs to `attn1` and `attn2` alike and warns on every call about keys a processor ignores.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from model.config import Pooling
from model.pooling import pool_reference_outputs

# name of a self-attention module -> features of shape (k, R, M, C): k references, R rows (1 = shared)
ReferenceFeatures = dict[str, torch.Tensor]


@dataclass
class ReferenceContext:
    """What the processors of one BootPIG model share during a forward pass."""

    recording: bool = False
    num_references: int = 1
    recorded: dict[str, torch.Tensor] = field(default_factory=dict)
    features: ReferenceFeatures | None = None
    rows: torch.Tensor | None = None  # base-batch rows that see references; None = all rows
    pooling: Pooling = Pooling.softmax
    key_scale: float = 1.0

    @contextmanager
    def record(self, num_references: int) -> Iterator[dict[str, torch.Tensor]]:
        """Collect Reference-UNet self-attention inputs; the caller reshapes them once the pass ends."""
        self.recording, self.num_references, self.recorded = True, num_references, {}
        try:
            yield self.recorded
        finally:
            self.recording = False

    @contextmanager
    def inject(
        self,
        features: ReferenceFeatures | None,
        rows: torch.Tensor | None = None,
        pooling: Pooling | str = Pooling.softmax,
        key_scale: float = 1.0,
    ) -> Iterator[None]:
        """Let the Base UNet's RSA layers see `features` for the duration of one call."""
        self.features, self.rows, self.pooling, self.key_scale = features, rows, Pooling(pooling), key_scale
        try:
            yield
        finally:
            self.features, self.rows = None, None


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    batch, length, inner = x.shape
    return x.view(batch, length, heads, inner // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    batch, heads, length, dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * dim)


class ReferenceRecorderProcessor(AttnProcessor2_0):
    """Reference UNet `attn1`: remember the input under this layer's name, then attend normally."""

    def __init__(self, name: str, context: ReferenceContext):
        super().__init__()
        self.name, self.context = name, context

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.context.recording:
            self.context.recorded[self.name] = hidden_states
        return super().__call__(attn, hidden_states, *args, **kwargs)


class ReferenceAttnProcessor(AttnProcessor2_0):
    """Base UNet `attn1`: RSA(f, f_ref) = W_o softmax(q(f)[k(f); k(f_ref)]^T)[v(f); v(f_ref)]."""

    def __init__(self, name: str, context: ReferenceContext):
        super().__init__()
        self.name, self.context = name, context

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        features = self.context.features
        if features is None:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if self.name not in features:
            raise KeyError(f"no reference features recorded for self-attention layer {self.name!r}")
        if (
            encoder_hidden_states is not None
            or attention_mask is not None
            or attn.spatial_norm is not None
            or attn.group_norm is not None
            or hidden_states.ndim != 3
            or attn.residual_connection
        ):
            raise NotImplementedError("RSA supports the 3-D self-attention of transformer blocks only")
        return self.reference_attention(attn, hidden_states, features[self.name])

    def reference_attention(self, attn: Attention, f: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        """RSA for rows with references, plain self-attention for the others, then pooling."""
        ctx = self.context
        if f_ref.ndim != 4:
            raise ValueError(f"reference features must be (k, R, M, C), got shape {tuple(f_ref.shape)}")
        k = f_ref.shape[0]
        batch = f.shape[0]
        rows = ctx.rows if ctx.rows is not None else torch.arange(batch, device=f.device)

        query, key, value = attn.to_q(f), attn.to_k(f), attn.to_v(f)
        # Reference keys/values are projected once and shared by every row that sees them.
        ref_key = attn.to_k(f_ref * ctx.key_scale if ctx.key_scale != 1.0 else f_ref)  # (k, R, M, D)
        ref_value = attn.to_v(f_ref)
        shared = ref_key.shape[1]
        if shared not in (1, len(rows)):
            raise ValueError(f"reference features have {shared} rows, expected 1 or {len(rows)}")

        q_r, k_r, v_r = query[rows], key[rows], value[rows]
        n_rows, length, dim = q_r.shape

        def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
            q, keys, values = (_heads(t, attn.heads) for t in (q, keys, values))
            if attn.norm_q is not None:
                q = attn.norm_q(q)
            if attn.norm_k is not None:
                keys = attn.norm_k(keys)
            out = _merge_heads(F.scaled_dot_product_attention(q, keys, values))
            return attn.to_out[1](attn.to_out[0](out.to(q.dtype)))

        if ctx.pooling is Pooling.concat or k == 1:
            # All pooling modes agree for one reference; concat attends over every reference at once.
            ref_k = ref_key.transpose(0, 1).reshape(shared, -1, dim).expand(n_rows, -1, -1)
            ref_v = ref_value.transpose(0, 1).reshape(shared, -1, dim).expand(n_rows, -1, -1)
            mixed = attend(q_r, torch.cat([k_r, ref_k], 1), torch.cat([v_r, ref_v], 1))
        else:
            # One attention per reference, batched along the batch axis: (k * rows, N + M, D).
            ref_k = ref_key.expand(k, n_rows, -1, -1)
            ref_v = ref_value.expand(k, n_rows, -1, -1)
            keys = torch.cat([k_r.expand(k, -1, -1, -1), ref_k], 2).reshape(k * n_rows, -1, dim)
            values = torch.cat([v_r.expand(k, -1, -1, -1), ref_v], 2).reshape(k * n_rows, -1, dim)
            o_refs = attend(q_r.repeat(k, 1, 1), keys, values).view(k, n_rows, length, -1)
            o_plain = attend(q_r, k_r, v_r)
            mixed = pool_reference_outputs(o_plain, o_refs, ctx.pooling)

        if n_rows == batch and ctx.rows is None:
            return mixed
        others = torch.ones(batch, dtype=torch.bool, device=f.device)
        others[rows] = False
        out = torch.empty((batch, length, mixed.shape[-1]), dtype=mixed.dtype, device=mixed.device)
        out = out.index_copy(0, rows, mixed)
        if others.any():
            other_idx = others.nonzero().squeeze(1)
            plain = attend(query[other_idx], key[other_idx], value[other_idx])
            out = out.index_copy(0, other_idx, plain)
        return out


def self_attention_names(unet: torch.nn.Module) -> list[str]:
    """Names of the UNet's self-attention modules (`attn1` of every transformer block)."""
    return [
        name
        for name, module in unet.named_modules()
        if isinstance(module, Attention) and name.endswith("attn1")
    ]


def _install(unet: torch.nn.Module, make) -> None:
    processors = {}
    for name in unet.attn_processors:
        module_name = name.removesuffix(".processor")
        processors[name] = make(module_name) if module_name.endswith("attn1") else AttnProcessor2_0()
    unet.set_attn_processor(processors)


def install_reference_processors(ref_unet, base_unet, context: ReferenceContext) -> None:
    """Give the Reference UNet recorders and the Base UNet RSA layers, both bound to `context`."""
    if self_attention_names(ref_unet) != self_attention_names(base_unet):
        raise ValueError("reference and base UNets must have the same self-attention layers")
    _install(ref_unet, lambda name: ReferenceRecorderProcessor(name, context))
    _install(base_unet, lambda name: ReferenceAttnProcessor(name, context))
