"""Reference Self-Attention (RSA) as diffusers attention processors.

Two small processors share one `ReferenceContext`:

* `ReferenceRecorderProcessor` sits on every `attn1` of the Reference UNet. It stores its input (the
  hidden states after `norm1`) under its module name, then runs ordinary self-attention. At inference
  the pass stops once the last layer has recorded: nothing after it is needed.
* `ReferenceAttnProcessor` sits on every `attn1` of the Base UNet. When the context holds reference
  features for its module name it attends over `[f; f_ref]` with its own weights (and pools over k
  references); otherwise it is plain self-attention.

RSA has two implementations with the same result (`AttentionImpl`): `merged` (default) attends over the
self keys once and over each reference's keys alone and merges them exactly by their log-sum-exps
(`model.lse_attention`), (1 + k) n^2 work per row; `direct` attends over `[f; f_ref_i]` for every
reference, (1 + 2k) n^2, and is kept as the reference the tests compare against. Training (gradients)
always takes `direct`: the fused kernels' log-sum-exp carries no gradient.

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

from model.config import AttentionImpl, Pooling
from model.lse_attention import attention_with_lse, joint_shares, reference_share
from model.pooling import pool_reference_deltas, pool_reference_outputs

# name of a self-attention module -> features of shape (k, R, M, C): k references, R rows (1 = shared)
ReferenceFeatures = dict[str, torch.Tensor]


class ReferencePassComplete(Exception):
    """Raised by the last recorder to end a Reference UNet pass whose remaining output is unused."""


@dataclass
class ReferenceContext:
    """What the processors of one BootPIG model share during a forward pass."""

    recording: bool = False
    num_references: int = 1
    layer_count: int = 0  # recorders installed; the pass may stop once all of them have recorded
    recorded: dict[str, torch.Tensor] = field(default_factory=dict)
    features: ReferenceFeatures | None = None
    rows: torch.Tensor | None = None  # base-batch rows that see references; None = all rows
    pooling: Pooling = Pooling.softmax
    key_scale: float = 1.0
    impl: AttentionImpl = AttentionImpl.merged  # `direct` also runs the reference pass to its end
    # Reference keys/values projected by the Base UNet, kept while the same features are injected again
    # (features reused over steps); treated as immutable, released by `release_projections`.
    projections: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    projected_from: tuple[ReferenceFeatures, float] | None = None

    @contextmanager
    def record(self, num_references: int) -> Iterator[dict[str, torch.Tensor]]:
        """Collect Reference-UNet self-attention inputs; the caller reshapes them once the pass ends."""
        self.recording, self.num_references, self.recorded = True, num_references, {}
        try:
            yield self.recorded
        except ReferencePassComplete:
            pass
        finally:
            self.recording = False

    @property
    def stop_when_recorded(self) -> bool:
        """End the reference pass early at inference (a gradient pass runs to the end, untouched)."""
        return (
            self.recording
            and self.impl is AttentionImpl.merged  # `direct` stays the plain transcription throughout
            and not torch.is_grad_enabled()
            and len(self.recorded) == self.layer_count
        )

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
        source = self.projected_from
        if features is not None and (source is None or source[0] is not features or source[1] != key_scale):
            self.projections, self.projected_from = {}, (features, key_scale)
        try:
            yield
        finally:
            self.features, self.rows = None, None

    def release_projections(self) -> None:
        self.projections, self.projected_from = {}, None


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
            if self.context.stop_when_recorded:
                raise ReferencePassComplete
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
            or attn.rescale_output_factor != 1.0
            or not has_default_scale(attn)
        ):
            # Upcasting needs no guard: every kernel used here accumulates the softmax in float32.
            raise NotImplementedError("RSA supports the 3-D self-attention of transformer blocks only")
        f_ref = features[self.name]
        if f_ref.ndim != 4:
            raise ValueError(f"reference features must be (k, R, M, C), got shape {tuple(f_ref.shape)}")
        needs_grad = torch.is_grad_enabled() and (
            hidden_states.requires_grad or f_ref.requires_grad or attn.to_q.weight.requires_grad
        )
        if self.context.impl is AttentionImpl.direct or needs_grad:
            return self.direct_attention(attn, hidden_states, f_ref)
        return self.merged_attention(attn, hidden_states, f_ref)

    def reference_keys_values(
        self, attn: Attention, f_ref: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference keys and values split into heads, (k, R, H, M, D); reused while features are."""
        cached = self.context.projections.get(self.name)
        if cached is not None:
            return cached
        k, shared, length, _ = f_ref.shape
        flat = f_ref.flatten(0, 1)
        scale = self.context.key_scale
        keys = _heads(attn.to_k(flat * scale if scale != 1.0 else flat), attn.heads)
        if attn.norm_k is not None:
            keys = attn.norm_k(keys)
        values = _heads(attn.to_v(flat), attn.heads)
        split = (k, shared, attn.heads, length, -1)
        projected = keys.contiguous().view(split), values.contiguous().view(split)
        self.context.projections[self.name] = projected
        return projected

    def merged_attention(self, attn: Attention, f: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        """RSA for every pooling mode from 1 + k attentions merged by their log-sum-exps.

        Every row attends over its own keys once (rows without references stop there); each row with
        references attends over each reference's keys alone. With s_i = sigmoid(L_i - L_self),
        RSA(f, f_ref_i) before W_o is O_self + s_i (O_i - O_self), so the pooling sees the exact
        differences o_i - o = W_o s_i (O_i - O_self) (no bias). Modes linear in the o_i (average,
        concat, one reference) mix before W_o, so each row is projected once.
        """
        ctx = self.context
        k, shared = f_ref.shape[:2]
        rows = ctx.rows
        n_rows = f.shape[0] if rows is None else len(rows)
        if shared not in (1, n_rows):
            raise ValueError(f"reference features have {shared} rows, expected 1 or {n_rows}")
        query = _heads(attn.to_q(f), attn.heads)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        keys = _heads(attn.to_k(f), attn.heads)
        if attn.norm_k is not None:
            keys = attn.norm_k(keys)
        o_self, lse_self = attention_with_lse(query, keys, _heads(attn.to_v(f), attn.heads))
        ref_keys, ref_values = self.reference_keys_values(attn, f_ref)

        q_r, o_r, l_r = (t if rows is None else t[rows] for t in (query, o_self, lse_self))
        _, heads, length, dim = q_r.shape
        if shared == 1:  # every row sees the same references: one query sequence of all rows
            q_r = q_r.transpose(0, 1).reshape(1, heads, n_rows * length, dim)
        outs, lses = [], []
        for i in range(k):
            out, lse = attention_with_lse(q_r, ref_keys[i], ref_values[i])
            if shared == 1:
                out = out.view(heads, n_rows, length, dim).transpose(0, 1)
                lse = lse.view(heads, n_rows, length).transpose(0, 1)
            outs.append(out)
            lses.append(lse)

        project = attn.to_out[0]

        def bias_free(x: torch.Tensor) -> torch.Tensor:  # W_o x: the projection of a difference
            return F.linear(_merge_heads(x).to(f.dtype), project.weight)

        parts = list(zip(outs, lses, strict=True))
        if ctx.pooling is Pooling.concat or k == 1 or ctx.pooling is Pooling.average:
            # Linear in the o_i: mix before W_o, so every row is projected once.
            if ctx.pooling is Pooling.concat:
                shares = joint_shares(l_r, torch.stack(lses))
                pre = sum(share * (out - o_r) for share, out in zip(shares, outs, strict=True))
            else:
                pre = sum(reference_share(l_r, lse) * (out - o_r) for out, lse in parts) / k
            pre = (o_r + pre).to(o_self.dtype)
            heads_out = pre if rows is None else o_self.index_copy(0, rows, pre)
            return attn.to_out[1](project(_merge_heads(heads_out)))
        # softmax, argmax: the per-pixel norms need each difference after W_o
        deltas = torch.stack([bias_free(reference_share(l_r, lse) * (out - o_r)) for out, lse in parts])
        delta = pool_reference_deltas(deltas, ctx.pooling)
        plain = project(_merge_heads(o_self))
        mixed = plain + delta if rows is None else plain.index_add(0, rows, delta)
        return attn.to_out[1](mixed)

    def direct_attention(self, attn: Attention, f: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        """RSA for rows with references, plain self-attention for the others, then pooling.

        The straightforward transcription: one attention over `[f; f_ref_i]` per reference.
        """
        ctx = self.context
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


def has_default_scale(attn: Attention) -> bool:
    """RSA's kernels scale q·k by 1/sqrt(head dim), as SDPA does; a layer configured otherwise is refused."""
    return attn.scale_qk and attn.scale == (attn.inner_dim // attn.heads) ** -0.5


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
    context.layer_count = len(self_attention_names(ref_unet))
    _install(base_unet, lambda name: ReferenceAttnProcessor(name, context))
