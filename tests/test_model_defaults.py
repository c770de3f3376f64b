"""Model-dependent request defaults are resolved in one function, the same for the worker and the CLI."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from model.config import RANDOM_SEED_RANGE, Pooling, draw_seed, resolve_generation_config


def test_absent_or_none_size_and_pooling_come_from_the_checkpoint():
    for values in ({"prompt": "a dog"}, {"prompt": "a dog", "height": None, "width": None, "pooling": None}):
        config = resolve_generation_config(values, native_size=256, native_pooling="argmax")
        assert (config.height, config.width, config.pooling) == (256, 256, Pooling.argmax)


def test_given_values_win_and_are_still_validated():
    values = {"prompt": "a dog", "height": 64, "width": 72, "pooling": "average"}
    config = resolve_generation_config(values, native_size=512, native_pooling=Pooling.softmax)
    assert (config.height, config.width, config.pooling) == (64, 72, Pooling.average)
    with pytest.raises(ValidationError, match="height"):
        resolve_generation_config({"prompt": "a dog", "height": 63}, 512, Pooling.softmax)


def test_drawn_seeds_are_in_range_and_vary():
    seeds = {draw_seed() for _ in range(20)}
    assert all(0 <= seed < RANDOM_SEED_RANGE for seed in seeds) and len(seeds) > 1
