"""The default-model rule: the configured model, else the bundled toy-world folder when it holds a model,
else the random-weight demo model; and the public names those get (never a path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bootpig.commands.config import render_markdown
from bootpig.settings import SOURCE_ROOT, Settings
from model.served import DEMO_NAME, TOY_WORLD_NAME, ModelKind, public_name


def bundled_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "bundled"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    return folder


def test_no_model_serves_the_bundled_folder_when_it_holds_a_model(tmp_path):
    folder = bundled_folder(tmp_path)
    choice = Settings(bundled_model_dir=folder).model_choice()
    assert (choice.source, choice.kind) == (str(folder), ModelKind.toy_world)
    assert choice.local_folder() == folder


def test_no_model_and_no_bundled_model_serves_the_demo(tmp_path):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "missing", tmp_path / "empty"):
        choice = Settings(bundled_model_dir=folder).model_choice()
        assert (choice.source, choice.kind) == (None, ModelKind.demo)
        assert choice.local_folder() is None


def test_a_configured_model_wins_over_the_bundled_one(tmp_path):
    choice = Settings(model="org/some-model", bundled_model_dir=bundled_folder(tmp_path)).model_choice()
    assert (choice.source, choice.kind) == ("org/some-model", ModelKind.configured)
    assert choice.local_folder() is None  # a hub id has no examples on this machine


def test_a_relative_bundled_folder_is_read_from_the_source_tree_wherever_the_service_starts(tmp_path):
    folder = bundled_folder(tmp_path)
    relative = os.path.relpath(folder, SOURCE_ROOT)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = "import sys; from bootpig.settings import Settings; "
    script += "print(Settings(bundled_model_dir=sys.argv[1]).model_choice())"
    result = subprocess.run(
        [sys.executable, "-c", script, relative],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(SOURCE_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"source='{SOURCE_ROOT / relative}'" in result.stdout and "toy-world" in result.stdout
    assert Settings().bundled_model_dir == Path("model/toyworld/assets/model")  # as the docs show it


def test_the_rule_is_in_the_configuration_reference():
    rows = {line.split(" | ")[0].strip("| `"): line for line in render_markdown().splitlines()}
    assert "`model/toyworld/assets/model`" in rows["bundled_model_dir"]
    assert "bundled_model_dir" in rows["model"] and "demo model" in rows["model"]


def test_public_names_carry_no_path(tmp_path):
    folder = tmp_path / "weights" / "my-model"
    folder.mkdir(parents=True)
    assert public_name(str(folder), ModelKind.configured) == "my-model"
    assert public_name("stabilityai/stable-diffusion-2-1-base", ModelKind.configured) == (
        "stabilityai/stable-diffusion-2-1-base"
    )
    assert public_name(str(folder), ModelKind.toy_world) == TOY_WORLD_NAME
    assert public_name(str(folder), ModelKind.demo) == DEMO_NAME


def test_the_cuda_graph_setting_reaches_the_served_pipeline(tiny_model_dir):
    from bootpig.settings import load_served_pipeline

    for enabled in (True, False):
        settings = Settings(model=str(tiny_model_dir), device="cpu", cuda_graphs=enabled)
        pipe, _ = load_served_pipeline(settings)
        assert pipe.use_cuda_graphs is enabled


def test_the_compile_setting_compiles_the_stateless_blocks_of_both_unets(tiny_model_dir):
    """Compiling happens on first use (minutes on a CPU), so this checks what is marked for it."""
    from diffusers.models.resnet import ResnetBlock2D

    from bootpig.settings import load_served_pipeline

    for enabled in (True, False):
        settings = Settings(model=str(tiny_model_dir), device="cpu", compile_blocks=enabled)
        pipe, _ = load_served_pipeline(settings)
        for unet in (pipe.ref_unet, pipe.base_unet):
            blocks = [m for m in unet.modules() if isinstance(m, ResnetBlock2D)]
            assert blocks and all((m._compiled_call_impl is not None) is enabled for m in blocks)
            assert unet.mid_block.attentions[0]._compiled_call_impl is None  # processors stay eager
