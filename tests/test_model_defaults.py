"""Model-dependent request defaults are resolved in one function, the same for the worker and the CLI."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from model.config import (
    RANDOM_SEED_RANGE,
    GenerationConfig,
    MethodConfig,
    Pooling,
    draw_seed,
    resolve_generation_config,
)

PAPER = MethodConfig()  # trained with the paper's shared timestep
FIXED_T = MethodConfig(pooling="argmax", reference_timestep=400)  # references trained at t = 400 only


def test_absent_or_none_size_and_pooling_come_from_the_checkpoint():
    for values in ({"prompt": "a dog"}, {"prompt": "a dog", "height": None, "width": None, "pooling": None}):
        config = resolve_generation_config(values, native_size=256, method=FIXED_T)
        assert (config.height, config.width, config.pooling) == (256, 256, Pooling.argmax)


def test_a_checkpoint_trained_at_a_fixed_reference_timestep_defaults_to_once_at_it():
    unset = {"prompt": "a dog", "reference_schedule": None, "reference_timestep": None}
    config = resolve_generation_config(unset, 64, FIXED_T)
    assert (config.reference_schedule, config.reference_timestep) == ("once", 400)
    paper = resolve_generation_config(unset, 64, PAPER)  # the paper's checkpoints keep the exact schedule
    defaults = GenerationConfig(prompt="a dog")
    assert (paper.reference_schedule, paper.reference_timestep) == (1, defaults.reference_timestep)
    asked = resolve_generation_config({"prompt": "a dog", "reference_schedule": 1}, 64, FIXED_T)
    assert (asked.reference_schedule, asked.reference_timestep) == (1, 400)  # what a request sets wins


def test_given_values_win_and_are_still_validated():
    values = {"prompt": "a dog", "height": 64, "width": 72, "pooling": "average"}
    config = resolve_generation_config(values, native_size=512, method=PAPER)
    assert (config.height, config.width, config.pooling) == (64, 72, Pooling.average)
    with pytest.raises(ValidationError, match="height"):
        resolve_generation_config({"prompt": "a dog", "height": 63}, 512, PAPER)


def test_drawn_seeds_are_in_range_and_vary():
    seeds = {draw_seed() for _ in range(20)}
    assert all(0 <= seed < RANDOM_SEED_RANGE for seed in seeds) and len(seeds) > 1
