"""Reference size and `reference_schedule`: when the Reference UNet runs and on what."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from pydantic import ValidationError

from model.config import GenerationConfig, reference_side
from model.generate import generate
from model.references import load_image


@pytest.fixture(scope="module")
def refs(dog_photos):
    return [load_image(p) for p in dog_photos[:2]]


@contextmanager
def reference_unet_inputs(pipe):
    """Record the latents of every real Reference UNet call (a forward pre-hook, nothing replaced)."""
    seen: list[torch.Size] = []
    hook = pipe.ref_unet.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    try:
        yield seen
    finally:
        hook.remove()


def run(pipe, refs, seed=0, steps=5, **kwargs):
    generator = torch.Generator().manual_seed(seed)
    return pipe("a dog", refs, generator=generator, steps=steps, output_type="latent", **kwargs)


@pytest.mark.parametrize("schedule,calls", [(1, 5), (2, 3), (3, 2), (5, 1), (50, 1), ("once", 1)])
def test_reference_unet_runs_as_scheduled(tiny_pipeline, refs, schedule, calls):
    with reference_unet_inputs(tiny_pipeline) as seen:
        run(tiny_pipeline, refs, reference_schedule=schedule)
    assert len(seen) == calls
    assert all(shape[0] == len(refs) for shape in seen)  # all k references in one batched pass


def test_every_step_schedule_is_the_exact_method(tiny_pipeline, refs):
    """m = 1 re-noises and re-encodes the references at each step: the default, and different from m = 2."""
    default = run(tiny_pipeline, refs).images
    every = run(tiny_pipeline, refs, reference_schedule=1).images
    every_other = run(tiny_pipeline, refs, reference_schedule=2).images
    assert torch.equal(default, every)
    assert not torch.allclose(every, every_other, atol=1e-4)


def test_every_step_merged_and_direct_attention_agree_over_a_whole_job(tiny_pipeline, refs):
    merged = run(tiny_pipeline, refs, pooling="softmax").images
    tiny_pipeline.unets.attention_impl = "direct"
    try:
        direct = run(tiny_pipeline, refs, pooling="softmax").images
    finally:
        tiny_pipeline.unets.attention_impl = "merged"
    assert ((merged - direct).abs().max() / direct.abs().max()).item() <= 1e-4


def test_once_per_job_features_can_be_reused_by_the_next_job(tiny_pipeline, refs):
    first = run(tiny_pipeline, refs, reference_schedule="once", seed=1)
    assert first.reference_features is not None
    with reference_unet_inputs(tiny_pipeline) as seen:
        again = run(
            tiny_pipeline, [], reference_schedule="once", seed=1, reference_features=first.reference_features
        )
    assert seen == []  # the Reference UNet did not run at all
    assert torch.equal(again.images, first.images)
    other_job = run(tiny_pipeline, refs, reference_schedule="once", seed=2, steps=2)
    for name, features in first.reference_features.items():  # nor on the job's seed or schedule
        assert torch.equal(features, other_job.reference_features[name]), name


def test_once_per_job_timestep_changes_the_features(tiny_pipeline, refs):
    early = run(tiny_pipeline, refs, steps=1, reference_schedule="once", reference_timestep=100)
    late = run(tiny_pipeline, refs, steps=1, reference_schedule="once", reference_timestep=900)
    name = next(iter(early.reference_features))
    assert not torch.allclose(early.reference_features[name], late.reference_features[name])


def test_precomputed_features_need_the_once_schedule(tiny_pipeline, refs):
    features = run(tiny_pipeline, refs, steps=1, reference_schedule="once").reference_features
    with pytest.raises(ValueError, match='reference_schedule="once"'):
        run(tiny_pipeline, refs, steps=1, reference_features=features)


def test_references_default_to_the_output_size(tiny_pipeline, refs):
    with reference_unet_inputs(tiny_pipeline) as seen:
        run(tiny_pipeline, refs, steps=1, height=48, width=80)
        run(tiny_pipeline, refs, steps=1, height=48, width=80, reference_size=32)
    assert seen[0][-2:] == (10, 10)  # larger side 80 px -> 10 x 10 latents
    assert seen[1][-2:] == (4, 4)


def test_generation_config_reference_settings():
    config = GenerationConfig(prompt="a dog", height=256, width=384)
    assert config.reference_schedule == 1 and config.reference_size is None
    assert config.resolved_reference_size() == 384 == reference_side(256, 384)
    assert GenerationConfig(prompt="a dog", reference_size=128).resolved_reference_size() == 128
    assert GenerationConfig(prompt="a dog", reference_schedule="4").reference_schedule == 4
    assert GenerationConfig(prompt="a dog", reference_schedule="once").reference_schedule == "once"
    for bad in ("0", "twice", 2.5, -3):
        with pytest.raises(ValidationError, match="whole number of steps"):
            GenerationConfig(prompt="a dog", reference_schedule=bad)
    with pytest.raises(ValidationError, match="multiple of 8"):
        GenerationConfig(prompt="a dog", reference_size=100)


def test_generate_prepares_references_at_the_reference_size_and_returns_reusable_features(
    tiny_pipeline, refs
):
    config = GenerationConfig(
        prompt="a dog", steps=2, height=64, width=64, segment="none", seed=3, reference_schedule="once"
    )
    result = generate(tiny_pipeline, refs, config)
    assert [r.size for r in result.references] == [(64, 64)] * len(refs)
    assert result.reference_features is not None
    with reference_unet_inputs(tiny_pipeline) as seen:
        again = generate(tiny_pipeline, refs, config, reference_features=result.reference_features)
    assert seen == [] and again.references == []
    assert [a.tobytes() for a in again.images] == [b.tobytes() for b in result.images]


@pytest.mark.parametrize("scheduler_name", ["unipc", "ddim"])
def test_references_noised_up_front_equal_noising_step_by_step(scheduler_name):
    """`noised_references` draws every step's noise before the loop: the same numbers as drawing per step."""
    from diffusers import DDIMScheduler
    from diffusers.utils.torch_utils import randn_tensor

    from model.reference_noise import noised_references
    from model.tiny import tiny_scheduler

    scheduler = tiny_scheduler()
    if scheduler_name == "ddim":
        scheduler = DDIMScheduler.from_config(scheduler.config)
    scheduler.set_timesteps(6)
    clean = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    steps = list(scheduler.timesteps[::2])
    up_front = noised_references(scheduler, clean, steps, torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    step_by_step = [
        scheduler.add_noise(clean, randn_tensor(clean.shape, generator=generator), t.reshape(1))
        for t in steps
    ]
    assert up_front.shape == (3, *clean.shape)
    assert torch.equal(up_front, torch.stack(step_by_step))
    assert not torch.equal(up_front[0], up_front[1])  # fresh noise, other timestep
