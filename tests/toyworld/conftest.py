"""The toy-world tests run tiny networks (see `one_torch_thread` in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(one_torch_thread):
    yield
