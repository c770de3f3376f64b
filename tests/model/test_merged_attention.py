"""The log-sum-exp merged RSA against the direct reference implementation, and its kernels."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
import torch.nn.functional as F
from rsa_run import rsa

from model import lse_attention
from model.config import AttentionImpl, Pooling
from model.guidance import guided_noise_prediction
from model.lse_attention import attention_with_lse, chunked_attention_with_lse

ALL_POOLINGS = [m.value for m in Pooling]


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.float() - expected.float()).abs().max() / expected.float().abs().max()).item()


def reference_stack(f: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """k references (k, 1, N, C) around f at different distances, so pooling weights differ."""
    generator = torch.Generator().manual_seed(seed)
    scales = torch.linspace(0.3, 2.0, k)
    return torch.stack([f + s * torch.randn(f.shape, generator=generator) for s in scales])


@pytest.fixture(scope="module")
def layers(tiny_pipeline, layer_inputs):
    """(attention module, name, inputs) for the tiny UNet's largest and smallest self-attention."""
    names = list(layer_inputs)
    return [(tiny_pipeline.base_unet.get_submodule(n), n, layer_inputs[n]) for n in (names[0], names[2])]


@pytest.mark.parametrize("pooling", ALL_POOLINGS)
@pytest.mark.parametrize("key_scale", [1.0, 1.1])
def test_merged_equals_direct_for_every_pooling_and_reference_count(layers, pooling, key_scale):
    for attn, name, f in layers:
        target = torch.cat([f[:1], f[1:], f[:1] * 0.5])  # 3 rows, like the three guidance branches
        for k in range(1, 9):
            refs = reference_stack(f[1:], k, seed=k)
            for rows in (None, torch.tensor([1, 2])):
                args = (attn, name, target, refs, pooling, rows, key_scale)
                merged = rsa(*args, impl=AttentionImpl.merged)
                direct = rsa(*args, impl=AttentionImpl.direct)
                assert relative_error(merged, direct) <= 1e-5, (name, k, rows)


def test_merged_equals_direct_with_references_per_row(layers):
    attn, name, f = layers[0]
    refs = torch.stack([f.flip(1), f * 0.7, f + 1.0])  # (k=3, R=2, M, C): each row its own references
    for pooling in ALL_POOLINGS:
        merged = rsa(attn, name, f, refs, pooling)
        direct = rsa(attn, name, f, refs, pooling, impl="direct")
        assert relative_error(merged, direct) <= 1e-5, pooling


def test_rows_without_references_get_exactly_plain_attention(layers):
    from diffusers.models.attention_processor import AttnProcessor2_0

    attn, name, f = layers[0]
    out = rsa(attn, name, f, reference_stack(f[:1], 3, seed=0), rows=torch.tensor([1]))
    with torch.no_grad():
        plain = AttnProcessor2_0()(attn, f[:1])
    assert relative_error(out[:1], plain) <= 1e-6


def test_guided_step_with_authors_settings_is_unchanged(tiny_pipeline):
    """argmax + key scale 1.1 (the authors' release): the whole guided step, merged vs direct."""
    unets = copy.deepcopy(tiny_pipeline.unets)
    unets.method = unets.method.model_copy(update={"reference_key_scale": 1.1, "pooling": Pooling.argmax})
    torch.manual_seed(0)
    latents, refs = torch.randn(1, 4, 8, 8), torch.randn(4, 4, 8, 8)
    prompt, negative = torch.randn(1, 77, 32), torch.randn(1, 77, 32)
    results = {}
    for impl in AttentionImpl:
        unets.attention_impl = impl
        with torch.no_grad():
            results[impl] = guided_noise_prediction(
                unets, latents, 400, prompt, negative, noisy_reference_latents=refs, reference_embeds=prompt
            )
    assert relative_error(results[AttentionImpl.merged], results[AttentionImpl.direct]) <= 1e-5


@pytest.mark.parametrize("batch,heads,length,keys,dim", [(2, 3, 50, 70, 16), (1, 5, 257, 1000, 64)])
def test_attention_with_lse_matches_sdpa_and_logsumexp(batch, heads, length, keys, dim):
    torch.manual_seed(0)
    q, k, v = (
        torch.randn(batch, heads, length, dim),
        torch.randn(1, heads, keys, dim),
        torch.randn(1, heads, keys, dim),
    )
    k, v = k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)
    expected_out = F.scaled_dot_product_attention(q, k, v)
    expected_lse = torch.logsumexp(q @ k.transpose(-1, -2) / dim**0.5, dim=-1)
    for out, lse in (attention_with_lse(q, k, v), chunked_attention_with_lse(q, k, v)):
        assert relative_error(out, expected_out) <= 1e-5
        assert (lse - expected_lse).abs().max() <= 1e-4
        assert lse.dtype == torch.float32 and lse.shape == (batch, heads, length)


def test_chunked_fallback_splits_queries_and_stays_exact(monkeypatch):
    monkeypatch.setattr(lse_attention, "CHUNK_SCORES_BYTES", 4 * 3 * 40 * 7)  # 7 queries per block
    torch.manual_seed(1)
    q, k, v = torch.randn(1, 3, 50, 8), torch.randn(1, 3, 40, 8), torch.randn(1, 3, 40, 8)
    out, lse = chunked_attention_with_lse(q, k, v)
    assert relative_error(out, F.scaled_dot_product_attention(q, k, v)) <= 1e-5
    assert (lse - torch.logsumexp(q @ k.transpose(-1, -2) / 8**0.5, -1)).abs().max() <= 1e-5


def test_merged_rsa_without_the_private_kernel(layers, monkeypatch):
    """A PyTorch build without the fused op falls back to the chunked path with the same result."""
    attn, name, f = layers[0]
    refs = reference_stack(f[1:], 3, seed=3)
    fused = rsa(attn, name, f, refs)
    monkeypatch.setattr(lse_attention, "fused_kernel", lambda device_type: None)
    fallback = rsa(attn, name, f, refs)
    assert relative_error(fallback, fused) <= 1e-5
    assert relative_error(fallback, rsa(attn, name, f, refs, impl="direct")) <= 1e-5


def test_kernel_refusing_the_inputs_falls_back_with_one_warning(layers, monkeypatch, caplog):
    attn, name, f = layers[0]
    refs = reference_stack(f[1:], 2, seed=4)

    def refusing(q, k, v):
        raise RuntimeError("no kernel for these inputs")

    monkeypatch.setattr(lse_attention, "fused_kernel", lambda device_type: refusing)
    monkeypatch.setattr(lse_attention, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="model.lse_attention"):
        out = rsa(attn, name, f, refs)
        rsa(attn, name, f, refs)
    assert relative_error(out, rsa(attn, name, f, refs, impl="direct")) <= 1e-5
    assert sum("no kernel for these inputs" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("pooling", ["softmax", "concat"])
def test_merged_rsa_in_half_precision_stays_close(layers, dtype, pooling):
    attn, name, f = layers[0]
    half_attn = copy.deepcopy(attn).to(dtype)
    refs = reference_stack(f[1:], 3, seed=5)
    full = rsa(attn, name, f, refs, pooling, impl="direct")
    half = rsa(half_attn, name, f.to(dtype), refs.to(dtype), pooling)
    assert half.dtype == dtype
    tolerance = 0.01 if dtype == torch.float16 else 0.05
    assert relative_error(half, full) <= tolerance
    assert (
        relative_error(half, rsa(half_attn, name, f.to(dtype), refs.to(dtype), pooling, impl="direct"))
        <= tolerance
    )


def test_training_gradients_take_the_direct_path(tiny_pipeline, layers):
    """The fused log-sum-exp has no gradient: with autograd on, RSA must stay differentiable."""
    attn, name, f = layers[0]
    refs = reference_stack(f[1:], 1, seed=6).requires_grad_(True)
    from model.attention import ReferenceAttnProcessor, ReferenceContext

    ctx = ReferenceContext()
    with ctx.inject({name: refs}):
        out = ReferenceAttnProcessor(name, ctx)(attn, f)
    out.pow(2).sum().backward()
    assert refs.grad is not None and refs.grad.abs().max() > 0
    assert relative_error(out.detach(), rsa(attn, name, f, refs.detach())) <= 1e-5


def test_reference_keys_are_projected_once_while_features_are_reused(tiny_pipeline):
    unets = tiny_pipeline.unets
    torch.manual_seed(2)
    latents, embeds = torch.randn(3, 4, 8, 8), torch.randn(3, 77, 32)
    with torch.no_grad():
        features = unets.reference_features(torch.randn(2, 4, 8, 8), 300, embeds[:1])
        first = unets.base_noise(latents, 300, embeds, features)
        cached = dict(unets.context.projections)
        second = unets.base_noise(latents, 300, embeds, features)
        assert all(unets.context.projections[n][0] is cached[n][0] for n in cached)
        assert len(cached) == 7 and torch.equal(first, second)
        copied = {n: t.clone() for n, t in features.items()}  # another features object: projected anew
        third = unets.base_noise(latents, 300, embeds, copied)
        assert all(unets.context.projections[n][0] is not cached[n][0] for n in cached)
        assert torch.equal(first, third)
    unets.release_reference_cache()
    assert unets.context.projections == {}


def test_reference_pass_stops_after_last_recording_with_the_same_features(tiny_pipeline):
    unets = tiny_pipeline.unets
    torch.manual_seed(3)
    latents, embeds = torch.randn(2, 4, 8, 8), torch.randn(1, 77, 32)
    conv_out_calls = []
    hook = unets.ref_unet.conv_out.register_forward_hook(lambda *a: conv_out_calls.append(1))
    try:
        with torch.no_grad():
            early = unets.reference_features(latents, 200, embeds)
        assert conv_out_calls == []  # nothing after the last self-attention ran
        with torch.enable_grad():  # a training pass runs the whole UNet
            full = unets.reference_features(latents, 200, embeds)
        assert conv_out_calls == [1]
    finally:
        hook.remove()
    assert list(early) == list(full)
    for name in early:
        assert torch.equal(early[name], full[name].detach()), name
