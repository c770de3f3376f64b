"""Reference Self-Attention and multi-reference pooling against the paper's equations."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from rsa_reference import pool_direct, rsa_direct
from rsa_run import rsa

from model.attention import ReferenceAttnProcessor, self_attention_names
from model.config import Pooling
from model.pooling import pool_reference_outputs, reference_weights
from model.unets import BootPIGUNets

ALL_POOLINGS = [m.value for m in Pooling]


def test_every_unet_self_attention_gets_rsa(tiny_pipeline):
    from diffusers.models.attention import BasicTransformerBlock

    names = self_attention_names(tiny_pipeline.base_unet)
    blocks = [m for m in tiny_pipeline.base_unet.modules() if isinstance(m, BasicTransformerBlock)]
    assert len(names) == len(blocks) == 7  # 2 down, 1 mid, 4 up transformer blocks in the tiny UNet
    for name in names:
        assert isinstance(tiny_pipeline.base_unet.get_submodule(name).processor, ReferenceAttnProcessor)


def test_rsa_with_itself_equals_plain_self_attention_at_every_layer(tiny_pipeline, layer_inputs):
    for name, f in layer_inputs.items():
        attn = tiny_pipeline.base_unet.get_submodule(name)
        with torch.no_grad():
            plain = AttnProcessor2_0()(attn, f)
        out = rsa(attn, name, f, f.unsqueeze(0))  # RSA(f, f) with per-row references
        assert (out - plain).abs().max().item() <= 1e-5, name


@pytest.mark.parametrize("setting", ["scale", "scale_qk", "rescale_output_factor"])
def test_rsa_refuses_attention_settings_it_does_not_implement(tiny_pipeline, layer_inputs, setting):
    name, f = next(iter(layer_inputs.items()))
    attn = copy.deepcopy(tiny_pipeline.base_unet.get_submodule(name))
    assert rsa(attn, name, f[:1], f[1:].unsqueeze(0)).shape == f[:1].shape  # the defaults are supported
    changed = {"scale": attn.scale * 2, "scale_qk": False, "rescale_output_factor": 2.0}[setting]
    setattr(attn, setting, changed)
    with pytest.raises(NotImplementedError):
        rsa(attn, name, f[:1], f[1:].unsqueeze(0))


@pytest.mark.parametrize("pooling", ALL_POOLINGS)
def test_one_reference_every_pooling_gives_rsa(tiny_pipeline, layer_inputs, pooling):
    for name, f in layer_inputs.items():
        attn = tiny_pipeline.base_unet.get_submodule(name)
        f_target, f_ref = f[:1], f[1:]
        out = rsa(attn, name, f_target, f_ref.unsqueeze(0), pooling=pooling)
        with torch.no_grad():
            expected = rsa_direct(attn, f_target, [f_ref])
        assert torch.allclose(out, expected, atol=1e-5), (name, pooling)


def test_rsa_differs_from_plain_attention(tiny_pipeline, layer_inputs):
    name, f = next(iter(layer_inputs.items()))
    attn = tiny_pipeline.base_unet.get_submodule(name)
    with torch.no_grad():
        plain = AttnProcessor2_0()(attn, f[:1])
    assert (rsa(attn, name, f[:1], f[1:].unsqueeze(0)) - plain).abs().max() > 1e-3


@pytest.mark.parametrize("pooling", ["softmax", "argmax", "average"])
def test_multi_reference_processor_matches_equations(tiny_pipeline, layer_inputs, pooling):
    name = next(iter(layer_inputs))
    attn = tiny_pipeline.base_unet.get_submodule(name)
    f = layer_inputs[name][:1]
    torch.manual_seed(1)
    refs = [f + torch.randn_like(f) * s for s in (0.5, 1.0, 2.0)]
    out = rsa(attn, name, f, torch.stack(refs), pooling=pooling)  # (k=3, R=1, M, C)
    with torch.no_grad():
        o = rsa_direct(attn, f, [])
        o_refs = [rsa_direct(attn, f, [r]) for r in refs]
        expected = pool_direct(o, o_refs, pooling)
    assert torch.allclose(out, expected, atol=1e-5)


def test_concat_pooling_attends_over_all_references(tiny_pipeline, layer_inputs):
    name = next(iter(layer_inputs))
    attn = tiny_pipeline.base_unet.get_submodule(name)
    f = layer_inputs[name][:1]
    refs = [f.flip(1), f * 0.5]
    out = rsa(attn, name, f, torch.stack(refs), pooling="concat")
    with torch.no_grad():
        expected = rsa_direct(attn, f, refs)
    assert torch.allclose(out, expected, atol=1e-5)


def test_reference_key_scale_scales_reference_keys_only(tiny_pipeline, layer_inputs):
    name = next(iter(layer_inputs))
    attn = tiny_pipeline.base_unet.get_submodule(name)
    f, f_ref = layer_inputs[name][:1], layer_inputs[name][1:]
    out = rsa(attn, name, f, f_ref.unsqueeze(0), key_scale=1.1)
    with torch.no_grad():
        expected = rsa_direct(attn, f, [f_ref], key_scale=1.1)
        unscaled = rsa_direct(attn, f, [f_ref])
    assert torch.allclose(out, expected, atol=1e-5)
    assert not torch.allclose(out, unscaled, atol=1e-4)


def test_rows_without_reference_get_plain_attention(tiny_pipeline, layer_inputs):
    name = next(iter(layer_inputs))
    attn = tiny_pipeline.base_unet.get_submodule(name)
    f = layer_inputs[name]  # 2 rows
    f_ref = f.flip(0)[:1]
    out = rsa(attn, name, f, f_ref.unsqueeze(0), rows=torch.tensor([1]))
    with torch.no_grad():
        assert torch.allclose(out[0], AttnProcessor2_0()(attn, f[:1])[0], atol=1e-6)
        assert torch.allclose(out[1], rsa_direct(attn, f[1:], [f_ref])[0], atol=1e-5)


def test_softmax_weights_sum_to_one_per_pixel():
    torch.manual_seed(0)
    o, o_refs = torch.randn(2, 7, 5), torch.randn(4, 2, 7, 5)
    weights = reference_weights(o, o_refs)
    assert weights.shape == (4, 2, 7, 1)
    assert torch.allclose(weights.sum(0), torch.ones(2, 7, 1), atol=1e-6)
    assert (weights > 0).all()


def test_argmax_picks_largest_norm_reference():
    o = torch.zeros(1, 3, 2)
    o_refs = torch.tensor(
        [
            [[[1.0, 0.0], [0.0, 5.0], [0.1, 0.0]]],
            [[[3.0, 0.0], [0.0, 1.0], [0.0, 0.2]]],
        ]
    )
    out = pool_reference_outputs(o, o_refs, "argmax")
    assert torch.equal(out, torch.tensor([[[3.0, 0.0], [0.0, 5.0], [0.0, 0.2]]]))


@pytest.mark.parametrize("pooling", ["softmax", "argmax", "average"])
def test_pooling_matches_equations_on_random_tensors(pooling):
    torch.manual_seed(3)
    o = torch.randn(2, 6, 8)
    o_refs = torch.randn(3, 2, 6, 8) * 2
    expected = pool_direct(o, list(o_refs), pooling)
    assert torch.allclose(pool_reference_outputs(o, o_refs, pooling), expected, atol=1e-5)


@pytest.mark.parametrize("pooling", ["softmax", "argmax", "average"])
def test_pooling_of_one_reference_is_that_reference(pooling):
    torch.manual_seed(4)
    o, o_ref = torch.randn(2, 6, 8), torch.randn(1, 2, 6, 8)
    assert torch.allclose(pool_reference_outputs(o, o_ref, pooling), o_ref[0], atol=1e-6)


def test_unets_must_share_layer_names(tiny_pipeline):
    from model.tiny import tiny_unet

    other = tiny_unet(cross_attention_dim=32)
    other.down_blocks = other.down_blocks[:1]
    with pytest.raises(ValueError, match="same self-attention layers"):
        BootPIGUNets(other, tiny_unet())


def test_rsa_in_bfloat16_stays_close_to_float32(tiny_pipeline, layer_inputs):
    import copy

    name, f = next(iter(layer_inputs.items()))
    attn = tiny_pipeline.base_unet.get_submodule(name)
    attn_bf16 = copy.deepcopy(attn).to(torch.bfloat16)
    full = rsa(attn, name, f[:1], f[1:].unsqueeze(0))
    half = rsa(attn_bf16, name, f[:1].bfloat16(), f[1:].unsqueeze(0).bfloat16())
    assert half.dtype == torch.bfloat16
    assert (half.float() - full).abs().max() < 0.05 * full.abs().max()
