"""`TrainConfig` defaults, config files with flag overrides, and `bootpig train` end to end."""

from __future__ import annotations

import json

import pytest
import yaml

from bootpig.cli import build_parser, main
from bootpig.commands.train import config_from_args
from model.train.checkpoint import TRAIN_CONFIG_NAME
from model.train.config import TrainConfig, load_train_config


def test_defaults_are_the_papers():
    config = TrainConfig(model="m", data="d", output="o")
    assert (config.lr_reference, config.lr_rsa) == (5e-6, 1e-6)
    assert config.adam_betas == (0.9, 0.999)
    assert (config.weight_decay, config.adam_epsilon, config.max_grad_norm) == (1e-2, 1e-8, 1.0)
    assert (config.batch_size, config.max_steps) == (64, 10_000)
    assert (config.caption_drop, config.reference_drop) == (0.15, 0.15)
    assert (config.augmentation.color_jitter, config.augmentation.random_erasing) == (0.1, 0.4)
    assert config.reference_caption == "object"
    assert config.accumulation_steps(1) == 16 and config.accumulation_steps(16) == 1
    with pytest.raises(ValueError, match="multiple"):
        config.accumulation_steps(3)


def test_config_file_then_overrides(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(
        yaml.safe_dump(
            {"model": "m", "data": "d", "output": "o", "max_steps": 7, "augmentation": {"min_area": 0.5}}
        )
    )
    config = load_train_config(path, max_steps=None, seed=9)
    assert (config.max_steps, config.seed, config.augmentation.min_area) == (7, 9, 0.5)
    (tmp_path / "train.json").write_text(json.dumps({"model": "m", "data": "d", "output": "o"}))
    assert load_train_config(tmp_path / "train.json", max_steps=3).max_steps == 3
    with pytest.raises(ValueError, match="learning_rate"):
        load_train_config(path, learning_rate=1.0)  # unknown settings are errors, not ignored
    with pytest.raises(ValueError, match="micro_batch_size"):
        load_train_config(path, batch_size=10, micro_batch_size=4)
    with pytest.raises(FileNotFoundError):
        load_train_config(tmp_path / "missing.yaml")


def test_cli_flags_override_the_config_file(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("model: m\ndata: d\noutput: o\nseed: 5\nbatch_size: 8\n")
    args = build_parser().parse_args(
        ["train", "--config", str(path), "--max-steps", "3", "--resume", "--no-gradient-checkpointing"]
    )
    config = config_from_args(args)
    assert (config.seed, config.batch_size, config.max_steps) == (5, 8, 3)
    assert config.resume == "latest" and config.gradient_checkpointing is False


def test_bootpig_train_command_exports_weights(tiny_model_dir, triplet_dir, tmp_path, capsys):
    output = tmp_path / "run"
    code = main(
        [
            "train",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(triplet_dir),
            "--output",
            str(output),
            "--max-steps",
            "1",
            "--batch-size",
            "2",
            "--micro-batch-size",
            "1",
            "--resolution",
            "64",
            "--num-workers",
            "1",
            "--local-files-only",
        ]
    )
    assert code == 0
    assert str(output / "final") in capsys.readouterr().out
    saved = TrainConfig.model_validate_json((output / "final" / TRAIN_CONFIG_NAME).read_text())
    assert (saved.max_steps, saved.batch_size, saved.micro_batch_size) == (1, 2, 1)
    assert (output / "checkpoint-1" / "ref_unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert main(["train", "--data", str(triplet_dir), "--output", str(output)]) == 2  # no --model
