"""Eq. 4 guidance, batching of references, determinism and save/load of the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from model.guidance import guided_noise_prediction
from model.pipeline import BootPIGPipeline, GenerationCancelled
from model.references import load_image


@pytest.fixture(scope="module")
def refs(dog_photos):
    return [load_image(p) for p in dog_photos[:3]]


def _pixels(images):
    return np.stack([np.asarray(im, dtype=np.int16) for im in images])


def test_guided_prediction_equals_eq4_from_three_unet_calls(tiny_pipeline):
    unets = tiny_pipeline.unets
    torch.manual_seed(0)
    latents, t = torch.randn(2, 4, 8, 8), torch.tensor(321)
    prompt, negative, ref_prompt = torch.randn(1, 77, 32), torch.randn(1, 77, 32), torch.randn(1, 77, 32)
    noisy_refs = torch.randn(2, 4, 8, 8)  # k = 2 references
    with torch.no_grad():
        guided = guided_noise_prediction(
            unets,
            latents,
            t,
            prompt,
            negative,
            noisy_reference_latents=noisy_refs,
            reference_embeds=ref_prompt,
            guidance_image=5.0,
            guidance_text=7.5,
        )
        features = unets.reference_features(noisy_refs, t, ref_prompt)
        eps_u = tiny_pipeline.base_unet(latents, t, negative.expand(2, -1, -1)).sample
        eps_i = unets.base_noise(latents, t, negative.expand(2, -1, -1), features)
        eps_t = unets.base_noise(latents, t, prompt.expand(2, -1, -1), features)
    expected = eps_u + 5.0 * (eps_i - eps_u) + 7.5 * (eps_t - eps_i)
    assert torch.allclose(guided, expected, atol=1e-5)
    assert not torch.allclose(eps_i, eps_u, atol=1e-4)  # the reference really changes the prediction


def test_batched_references_equal_one_at_a_time(tiny_pipeline):
    unets = tiny_pipeline.unets
    torch.manual_seed(1)
    refs, embeds, t = torch.randn(3, 4, 8, 8), torch.randn(1, 77, 32), torch.tensor(600)
    with torch.no_grad():
        batched = unets.reference_features(refs, t, embeds)
        single = [unets.reference_features(refs[i : i + 1], t, embeds) for i in range(3)]
    for name, feats in batched.items():
        assert feats.shape[:2] == (3, 1)
        assert torch.allclose(feats, torch.cat([s[name] for s in single]), atol=1e-5)


def test_same_seed_same_images_other_seed_differs(tiny_pipeline, refs):
    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return _pixels(tiny_pipeline("a dog in the snow", refs, generator=g, steps=3, num_images=2).images)

    first, again, other = run(7), run(7), run(8)
    assert np.array_equal(first, again)
    assert np.abs(first - other).max() > 0
    assert np.abs(first[0] - first[1]).max() > 0  # the two images of one request differ


def test_output_size_and_progress_callback(tiny_pipeline, refs):
    seen = []
    out = tiny_pipeline(
        "a dog",
        refs[:1],
        generator=torch.Generator().manual_seed(0),
        steps=4,
        height=48,
        width=80,
        callback=lambda step, total: seen.append((step, total)),
    )
    assert out.images[0].size == (80, 48)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_cancellation_stops_between_steps(tiny_pipeline, refs):
    steps_done = []
    with pytest.raises(GenerationCancelled):
        tiny_pipeline(
            "a dog",
            refs[:1],
            steps=10,
            callback=lambda s, t: steps_done.append(s),
            should_cancel=lambda: len(steps_done) >= 2,
        )
    assert steps_done == [1, 2]


@pytest.mark.parametrize("count", [0, 9])
def test_reference_count_is_checked(tiny_pipeline, count):
    with pytest.raises(ValueError, match="between 1 and 8"):
        tiny_pipeline("a dog", [Image.new("RGB", (64, 64))] * count, steps=1)


def test_pooling_modes_all_generate_and_differ(tiny_pipeline, refs):
    results = {}
    for mode in ["softmax", "argmax", "average", "concat"]:
        g = torch.Generator().manual_seed(3)
        results[mode] = _pixels(tiny_pipeline("a dog", refs, generator=g, steps=2, pooling=mode).images)
    assert np.abs(results["softmax"] - results["concat"]).max() > 0


def test_save_and_load_round_trip_gives_identical_images(tiny_pipeline, refs, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "ref_unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "saved" / "base_unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = BootPIGPipeline.from_pretrained(tmp_path / "saved", local_files_only=True)
    loaded.set_progress_bar_config(disable=True)
    a = tiny_pipeline("a dog", refs, generator=torch.Generator().manual_seed(5), steps=2).images
    b = loaded("a dog", refs, generator=torch.Generator().manual_seed(5), steps=2).images
    assert np.array_equal(_pixels(a), _pixels(b))


def test_checkpoint_folder_elsewhere_and_untrained_fallback(tiny_model_dir, tiny_pipeline, tmp_path):
    # Base model without BootPIG weights: both UNets start from the base UNet.
    base_only = tmp_path / "base"
    import shutil

    shutil.copytree(tiny_model_dir, base_only, ignore=shutil.ignore_patterns("ref_unet", "base_unet"))
    plain = BootPIGPipeline.from_pretrained(base_only, local_files_only=True)
    assert not plain.has_trained_weights
    for a, b in zip(plain.ref_unet.parameters(), plain.base_unet.parameters(), strict=True):
        assert torch.equal(a, b)
    # BootPIG weights from a separate checkpoint folder.
    with_ckpt = BootPIGPipeline.from_pretrained(base_only, tiny_model_dir, local_files_only=True)
    assert with_ckpt.has_trained_weights
    for a, b in zip(with_ckpt.ref_unet.parameters(), tiny_pipeline.ref_unet.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(FileNotFoundError, match="ref_unet"):
        BootPIGPipeline.from_pretrained(base_only, base_only, local_files_only=True)


@pytest.fixture
def diffusers_warnings(caplog):
    """diffusers' loggers do not propagate to the root logger: listen on the library logger itself."""
    import logging

    library = logging.getLogger("diffusers")
    library.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING)
    yield caplog
    library.removeHandler(caplog.handler)


def test_attention_warnings_are_observable(tiny_pipeline, diffusers_warnings):
    latents, embeds = torch.randn(1, 4, 8, 8), torch.randn(1, 77, 32)
    tiny_pipeline.base_unet(latents, 10, embeds, cross_attention_kwargs={"unknown_key": 1})
    assert any("unknown_key" in r.getMessage() for r in diffusers_warnings.records)


def test_generation_logs_no_attention_warnings(tiny_pipeline, refs, diffusers_warnings):
    tiny_pipeline("a dog", refs, generator=torch.Generator().manual_seed(0), steps=2)
    assert not diffusers_warnings.records
