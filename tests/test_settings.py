"""The settings object reads the environment the way the docs say."""

from __future__ import annotations

from pathlib import Path

from bootpig.settings import Settings


def test_environment_overrides_defaults(monkeypatch):
    monkeypatch.setenv("BOOTPIG_MODEL", "/weights/sd21")
    monkeypatch.setenv("REDIS_URL", "redis://example:6380/2")
    monkeypatch.setenv("BOOTPIG_SEGMENT", "none")
    settings = Settings()
    assert settings.model == "/weights/sd21"
    assert settings.redis_url == "redis://example:6380/2"
    assert settings.segment.value == "none"


def test_empty_variables_mean_default(monkeypatch):
    for name in [
        "BOOTPIG_MODEL",
        "BOOTPIG_CHECKPOINT",
        "BOOTPIG_DEVICE",
        "REDIS_URL",
        "BOOTPIG_DEMO_MODEL_DIR",
    ]:
        monkeypatch.setenv(name, "")
    settings = Settings()
    defaults = Settings.model_fields
    assert settings.model is None and settings.checkpoint is None  # the demo model is served
    assert settings.device == defaults["device"].default
    assert settings.redis_url == defaults["redis_url"].default
    assert settings.demo_model_dir == Path(".bootpig/demo-model")
