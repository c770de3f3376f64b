"""A reduced-scale `bootpig toyworld`: every stage connects through the production commands, every
metric of the table is computed, and a rerun resumes instead of redoing work.

The learning result itself is the full run's benchmark (docs/toyworld.md), not a test: at this scale
the networks train for two steps, so only the plumbing is checked here.
"""

from __future__ import annotations

import json
import math
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from PIL import Image

from bootpig.cli import main
from model.pipeline import BootPIGPipeline
from model.toyworld.bounds import BOUND_ROWS
from model.toyworld.config import ToyWorldConfig
from model.toyworld.driver import STAGES
from model.toyworld.world import SHAPES
from model.triplets import read_manifest


def finished_stages(out) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in (out / "stages").glob("*.json")}


REPO = Path(__file__).resolve().parents[2]
REDUCED_RUN = ["--reduced", "--ablation", "--no-progress"]


@pytest.fixture(scope="module")
def reduced_world(tmp_path_factory) -> Path:
    """One reduced run shared by the tests that read a finished world."""
    out = tmp_path_factory.mktemp("toyworld") / "world"
    assert main(["toyworld", "--out", str(out), *REDUCED_RUN]) == 0
    return out


def test_reduced_toy_world_runs_every_stage_and_computes_every_metric(reduced_world, capsys):
    out = reduced_world
    stages = finished_stages(out)
    assert set(stages) == set(STAGES)
    assert stages["base_check"]["pipeline_class"] == "StableDiffusionPipeline"  # AutoPipelineForText2Image
    assert 0.0 <= stages["base_check"]["shape_accuracy"] <= 1.0
    by_shape = stages["base_check"]["shape_accuracy_by_shape"]
    assert set(by_shape) == set(SHAPES)
    assert np.mean(list(by_shape.values())) == pytest.approx(stages["base_check"]["shape_accuracy"])
    assert [c["step"] for c in stages["base"]["checkpoints"]] == [1]  # judged mid-training, not at the end
    records = list(read_manifest(out / "triplets"))
    assert records and all(r.t2i_model.endswith("base-model") for r in records)
    assert all(r.segmenter.endswith("clipseg") for r in records)

    trained = BootPIGPipeline.from_pretrained(out / "base-model", out / "bootpig" / "white-erasing" / "final")
    assert trained.has_trained_weights and trained.reference_size == 64
    defaults = ToyWorldConfig()  # the base stage's settings reach the saved base UNet
    assert trained.base_unet.config.addition_embed_type == (
        "text" if defaults.unet_text_time_embedding else None
    )
    assert tuple(trained.base_unet.config.block_out_channels) == tuple(defaults.unet_channels)
    # the text encoder knows the captions' words only (no 49,408-row table), and any prompt still works
    assert trained.text_encoder.config.vocab_size == len(trained.tokenizer) < 1000
    assert trained.encode_prompt("a dog wearing sunglasses, on the moon 🌙").isfinite().all()

    rows = json.loads((out / "results.json").read_text())
    assert {"reference views", "text-only", "untrained", "trained k=1", "trained k=2 softmax"} <= set(rows)
    assert "trained k=2 softmax, reference every step (exact)" in rows  # another schedule's row
    assert "trained k=2 softmax, noise erasing" in rows  # --ablation
    assert set(BOUND_ROWS) <= set(rows)  # the metrics' bounds, the VAE's reconstruction among them
    for name, row in rows.items():
        keys = ("clip_i", "dino") if name == "reference views" else ("clip_t", "clip_i", "dino")
        keys += () if name == "reference views" else ("shape_accuracy", "scene_accuracy")
        assert all(math.isfinite(row[k]) for k in keys), name
    table = (out / "results.md").read_text()
    assert table.count("\n") == len(rows) + 2 and "| trained k=1 |" in table
    assert Image.open(out / "grid.png").size[0] == 2 * 64 * (2 + 4)  # 2 references + 4 columns

    capsys.readouterr()
    assert main(["toyworld", "--out", str(out), *REDUCED_RUN]) == 0
    assert finished_stages(out) == stages  # nothing was redone
    printed = capsys.readouterr().out
    assert "total:" in printed and "this command:" in printed


def test_the_vae_probe_trains_a_variant_and_scores_its_ceiling(reduced_world, tmp_path, monkeypatch):
    probe = tmp_path / "probe"
    argv = ["--world", str(reduced_world), "--out", str(probe), "--steps", "2", "--channels", "8,16,16"]
    monkeypatch.setattr(sys, "argv", ["toyworld_vae_probe.py", *argv, "--crop", "16"])
    runpy.run_path(str(REPO / "benchmarks" / "toyworld_vae_probe.py"), run_name="__main__")

    result = json.loads((probe / "probe.json").read_text())
    assert set(result["rows"]) == set(BOUND_ROWS)
    assert all(math.isfinite(value) for row in result["rows"].values() for value in row.values())
    assert AutoencoderKL.load_config(probe / "vae")["block_out_channels"] == [8, 16, 16]


@pytest.mark.parametrize(
    ("train_text_encoder", "text_time_embedding"), [(False, False), (True, False), (False, True)]
)
def test_the_base_probe_trains_the_variant_it_is_asked_for(
    reduced_world, tmp_path, monkeypatch, train_text_encoder, text_time_embedding
):
    """The probe judges its checkpoints with the text encoder it trains (the moving average's) and the
    UNet variant it was asked for."""
    from model.toyworld.base import text_encoder_from_clip
    from model.toyworld.quality import judge_unet

    judged = []
    monkeypatch.setattr(
        "model.toyworld.quality.judge_unet",
        lambda vae, text_encoder, unet, *rest: (
            judged.append((text_encoder, unet)) or judge_unet(vae, text_encoder, unet, *rest)
        ),
    )
    argv = ["--world", str(reduced_world), "--out", str(tmp_path), "--steps", "2", "--every", "1"]
    argv += ["--lr", "0.1", "--channels", "8,16,16"]
    argv += ["--train-text-encoder"] if train_text_encoder else []
    argv += ["--text-time-embedding"] if text_time_embedding else []
    monkeypatch.setattr(sys, "argv", ["toyworld_base_probe.py", *argv])
    runpy.run_path(str(REPO / "benchmarks" / "toyworld_base_probe.py"), run_name="__main__")

    rows = json.loads((tmp_path / "probe.json").read_text())["rows"]
    assert [row["step"] for row in rows] == [1, 2]
    assert all(set(row["shape_accuracy_by_shape"]) == set(SHAPES) for row in rows)
    frozen = text_encoder_from_clip(reduced_world / "encoders" / "clip").state_dict()
    text_encoder, unet = judged[-1]
    changed = any(not torch.equal(frozen[name], text_encoder.state_dict()[name]) for name in frozen)
    assert changed == train_text_encoder
    assert unet.config.addition_embed_type == ("text" if text_time_embedding else None)


def test_the_base_probe_defaults_to_its_worlds_base_stage(reduced_world, tmp_path, monkeypatch):
    """Left out, a training setting is the world's own, so the probe's flags are variants of exactly the
    base stage that world ran; `--snr-gamma 0` asks for the plain epsilon loss."""
    world = ToyWorldConfig.model_validate_json((reduced_world / "config.json").read_text())
    argv = ["--world", str(reduced_world), "--out", str(tmp_path), "--every", "1", "--snr-gamma", "0"]
    monkeypatch.setattr(sys, "argv", ["toyworld_base_probe.py", *argv])
    runpy.run_path(str(REPO / "benchmarks" / "toyworld_base_probe.py"), run_name="__main__")

    result = json.loads((tmp_path / "probe.json").read_text())
    settings = result["settings"]
    assert [row["step"] for row in result["rows"]] == list(range(1, world.unet_steps + 1))
    assert settings["batch_size"] == world.unet_batch and settings["lr"] == world.unet_lr
    assert tuple(settings["channels"]) == tuple(world.unet_channels)
    assert settings["object_weight"] == world.unet_object_weight
    assert settings["snr_gamma"] is None and world.unet_snr_gamma is not None


def test_the_object_weight_reaches_the_base_unet_loss(reduced_world):
    """Weighting the object's latent pixels changes what one update learns; weight 0 is the plain loss."""
    from model.toyworld.base import latent_masks, text_encoder_from_clip, train_unet
    from model.toyworld.data import scene_bank

    masks = np.zeros((1, 64, 64), bool)
    masks[0, 33, 34] = True  # one pixel in latent cell (8, 8): that cell and its 8 neighbours
    widened = latent_masks(masks, 16)[0, 0]
    assert widened.shape == (16, 16) and widened.sum() == 9 and widened[7:10, 7:10].all()

    config = json.loads((reduced_world / "config.json").read_text())
    bank = scene_bank(reduced_world / "world" / "scenes-train.npz", config["scene_images"], 64, 0)
    vae = AutoencoderKL.from_pretrained(reduced_world / "vae")
    text_encoder = text_encoder_from_clip(reduced_world / "encoders" / "clip")

    def trained(**options):
        unet, _ = train_unet(
            bank, vae, text_encoder, 1, 0, 8, progress=False, channels=(8, 16, 16), lr=0.1, **options
        )
        return torch.cat([p.flatten() for p in unet.parameters()])

    plain = trained()
    assert torch.equal(trained(object_weight=0.0), plain)
    assert not torch.allclose(trained(object_weight=4.0), plain)


def test_a_run_folder_refuses_other_settings(tmp_path, capsys):
    out = tmp_path / "world"
    assert main(["toyworld", "--out", str(out), "--reduced", "--until", "world", "--no-progress"]) == 0
    assert main(["toyworld", "--out", str(out), "--reduced", "--seed", "1", "--no-progress"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_a_folder_built_before_a_setting_existed_resumes_with_its_default(tmp_path):
    """A setting added later (absent from config.json) counts as its default; a changed one is refused."""
    from model.toyworld.config import reduced_config
    from model.toyworld.driver import ToyWorld

    out = tmp_path / "world"
    ToyWorld(out, reduced_config(), progress=False)
    stored = json.loads((out / "config.json").read_text())
    del stored["eval_reference_caption"]  # as written by an older version
    (out / "config.json").write_text(json.dumps(stored))
    ToyWorld(out, reduced_config(), progress=False)
    changed = reduced_config().model_copy(update={"eval_reference_caption": "prompt"})
    with pytest.raises(ValueError, match="other settings"):
        ToyWorld(out, changed, progress=False)


def test_a_folder_built_before_the_object_weight_existed_used_none(tmp_path):
    """`unet_object_weight` was added with 0 and its default moved to 4 later: an older folder's base model
    was trained unweighted, so it resumes only with 0, not with today's default."""
    from model.toyworld.config import reduced_config
    from model.toyworld.driver import ToyWorld

    out = tmp_path / "world"
    unweighted = reduced_config().model_copy(update={"unet_object_weight": 0.0})
    ToyWorld(out, unweighted, progress=False)
    stored = json.loads((out / "config.json").read_text())
    del stored["unet_object_weight"]  # as written before the setting existed
    (out / "config.json").write_text(json.dumps(stored))
    assert reduced_config().unet_object_weight > 0
    with pytest.raises(ValueError, match="other settings"):
        ToyWorld(out, reduced_config(), progress=False)
    ToyWorld(out, unweighted, progress=False)


def test_settings_from_a_file_build_and_resume_a_run_with_them(tmp_path, capsys):
    """`--config FILE`: another run's config.json with one setting changed starts (and resumes) a run."""
    from model.toyworld.config import reduced_config

    settings = tmp_path / "settings.json"
    settings.write_text(reduced_config().model_copy(update={"train_steps": 5}).model_dump_json())
    out = tmp_path / "world"
    args = ["toyworld", "--out", str(out), "--config", str(settings), "--until", "world", "--no-progress"]
    assert main(args) == 0
    assert json.loads((out / "config.json").read_text())["train_steps"] == 5
    assert main(args) == 0  # the same file resumes
    assert main(["toyworld", "--out", str(out), "--reduced", "--until", "world", "--no-progress"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main([*args, "--reduced"]) == 2
    assert "alternatives" in capsys.readouterr().err


def test_train_overrides_are_written_over_the_drivers_settings_and_validate(tmp_path):
    from model.toyworld.config import reduced_config
    from model.toyworld.driver import ToyWorld
    from model.train.config import load_train_config

    overrides = {"lr_rsa": 2e-5, "method": {"reference_key_scale": 2.0}}
    world = ToyWorld(tmp_path / "w", reduced_config().model_copy(update={"train_overrides": overrides}))
    settings = world.train_settings("white")
    assert settings["lr_rsa"] == 2e-5 and settings["lr_reference"] == world.config.lr
    config = load_train_config(None, model="m", data=tmp_path, output=tmp_path / "o", **settings)
    assert config.lr_rsa == 2e-5 and config.method.reference_key_scale == 2.0
    assert config.augmentation.erasing_fill == "white" and config.max_steps == world.config.train_steps
    assert config.augmentation.rotation == world.config.train_rotation == 30  # turned references


def test_the_toy_worlds_reference_rotation_reaches_bootpig_train(tmp_path):
    from model.toyworld.config import reduced_config
    from model.toyworld.driver import ToyWorld
    from model.train.config import load_train_config

    world = ToyWorld(tmp_path / "w", reduced_config().model_copy(update={"train_rotation": 0.0}))
    settings = world.train_settings("noise")
    config = load_train_config(None, model="m", data=tmp_path, output=tmp_path / "o", **settings)
    assert config.augmentation.rotation == 0.0 and config.augmentation.erasing_fill == "noise"


def test_oracle_triplet_source_replaces_synth_with_renderer_triplets(tmp_path):
    """`triplet_source`: the synth stage writes renderer triplets (no base model needed) for training."""
    from model.toyworld.config import reduced_config
    from model.toyworld.driver import ToyWorld

    config = reduced_config().model_copy(update={"triplet_source": "renderer-views"})
    world = ToyWorld(tmp_path / "w", config, progress=False)
    assert world.run(only="synth")["synth"] | {"seconds": 0} == {
        "seconds": 0,
        "kept": config.synth_count,
        "rejected": 0,
        "source": "renderer-views",
    }
    records = list(read_manifest(world.path("triplets")))
    assert len(records) == config.synth_count and all(r.t2i_model == "renderer-views" for r in records)
    assert all((world.path("triplets") / r.reference).is_file() for r in records)
