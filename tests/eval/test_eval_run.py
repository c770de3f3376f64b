"""`bootpig eval` end to end on real DreamBooth photos with the tiny model and tiny encoders."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
from PIL import Image

from bootpig.cli import main
from model.config import Segmenter
from model.eval.config import EvalConfig
from model.eval.plan import EvalRequest, image_path
from model.eval.run import run_evaluation

SUBJECTS = ["backpack", "cat"]  # one object, one live subject


def make_request(
    tiny_model_dir, dreambooth_dir, tiny_clip_dir, tiny_dino_dir, out, **overrides
) -> EvalRequest:
    config = EvalConfig(
        model=str(tiny_model_dir), images_per_prompt=2, steps=2, resolution=64, segment=Segmenter.none
    )
    request = EvalRequest(
        config=config,
        dataset=dreambooth_dir,
        out=out,
        subjects=SUBJECTS,
        prompts=2,
        clip_model=str(tiny_clip_dir),
        dino_model=str(tiny_dino_dir),
        device="cpu",
        local_files_only=True,
        progress=False,
    )
    return replace(request, **overrides)


@pytest.fixture(scope="module")
def cli_run(tiny_model_dir, dreambooth_dir, tiny_clip_dir, tiny_dino_dir, tmp_path_factory):
    """A 2-subject x 2-prompt run with the SD baseline, through the command line."""
    out = tmp_path_factory.mktemp("eval-cli")
    args = [
        "eval",
        "--model",
        str(tiny_model_dir),
        "--dataset",
        str(dreambooth_dir),
        "--subjects",
        "backpack,cat",
    ]
    args += [
        "--prompts",
        "2",
        "--images-per-prompt",
        "2",
        "--steps",
        "2",
        "--resolution",
        "64",
        "--segment",
        "none",
    ]
    args += ["--clip-model", str(tiny_clip_dir), "--dino-model", str(tiny_dino_dir), "--device", "cpu"]
    args += ["--baseline", "sd", "--out", str(out)]
    assert main(args) == 0
    return out


def test_run_writes_json_table_and_grids(cli_run, dreambooth_dir):
    report = json.loads((cli_run / "metrics.json").read_text())
    assert report["subjects"] == SUBJECTS and report["prompts_per_subject"] == 2
    assert report["methods"] == ["bootpig", "sd"] and report["random_weights"] is True
    results = report["results"]
    for method in ("bootpig", "sd"):
        overall, subjects = results[method]["overall"], results[method]["subjects"]
        assert overall["images"] == 2 * 2 * 2 and set(subjects) == set(SUBJECTS)
        for metric in ("clip_t", "clip_i", "dino"):
            assert -100 <= overall[metric] <= 100
            # Equal image counts per subject: the overall mean is the mean of the subject means.
            assert overall[metric] == pytest.approx(sum(s[metric] for s in subjects.values()) / 2)
    assert results["bootpig"]["overall"] != results["sd"]["overall"]
    photos = sum(len(list((dreambooth_dir / s).glob("*.jpg"))) for s in SUBJECTS)
    assert results["reference_images"]["overall"]["images"] == photos
    assert {row["method"] for row in report["published"]} >= {"BootPIG (zero-shot)", "Reference images"}

    table = (cli_run / "report.md").read_text()
    assert "| BootPIG (zero-shot) | 67.4 | 79.7 | 31.1 | BootPIG paper, Table 1 |" in table
    assert f"| **BootPIG** | {results['bootpig']['overall']['dino']:.1f} |" in table
    assert "Random-weight model" in table and "| cat |" in table

    for subject in SUBJECTS:
        grid = Image.open(cli_run / "grids" / f"{subject}.jpg")
        photos = len(list((dreambooth_dir / subject).glob("*.jpg")))
        # references column + two methods x two images; a row per photo or prompt, plus the label strip
        assert grid.width > 4 * 128 and grid.height >= max(photos, 2) * 128
        for method in ("bootpig", "sd"):
            for prompt_index in range(2):
                for i in range(2):
                    assert Image.open(image_path(cli_run, method, subject, prompt_index, i)).size == (64, 64)


def test_resume_generates_nothing_then_only_what_is_missing(
    cli_run, tiny_model_dir, dreambooth_dir, tiny_clip_dir, tiny_dino_dir
):
    request = make_request(
        tiny_model_dir, dreambooth_dir, tiny_clip_dir, tiny_dino_dir, cli_run, baseline="sd", grids=False
    )
    again = run_evaluation(request)
    assert again.generated == 0 and again.skipped == 2 * 2 * 2
    before = json.loads((cli_run / "metrics.json").read_text())["results"]
    assert again.report["results"] == before
    timing = again.report["timing"]
    assert timing["generated_images"] == 0 and timing["generated_images_total"] == 2 * 2 * 2 * 2

    missing, kept = image_path(cli_run, "bootpig", "cat", 1, 1), image_path(cli_run, "bootpig", "cat", 1, 0)
    original, kept_mtime = missing.read_bytes(), kept.stat().st_mtime_ns
    missing.unlink()
    repaired = run_evaluation(request)
    # Only that (subject, prompt) unit runs again: one batch of 2 images, of which 1 was missing.
    assert repaired.generated == 2 and repaired.skipped == 2 * 2 * 2 - 1
    assert kept.stat().st_mtime_ns == kept_mtime
    # Seeds come from (subject, prompt, batch), so the regenerated image is the one that was lost.
    assert Image.open(missing).tobytes() == Image.open(io.BytesIO(original)).tobytes()


def test_shards_split_the_work_and_match_an_unsharded_run(
    cli_run, tiny_model_dir, dreambooth_dir, tiny_clip_dir, tiny_dino_dir, tmp_path
):
    base = make_request(tiny_model_dir, dreambooth_dir, tiny_clip_dir, tiny_dino_dir, tmp_path, grids=False)
    first = run_evaluation(replace(base, shard=(0, 2)))
    assert first.report is None and first.generated == 2 * 2  # 2 of the 4 (subject, prompt) pairs
    assert not (tmp_path / "metrics.json").exists()
    second = run_evaluation(replace(base, shard=(1, 2)))
    assert second.generated == 2 * 2
    final = run_evaluation(base)
    assert final.generated == 0 and (tmp_path / "metrics.json").is_file()
    for subject in SUBJECTS:
        for prompt_index in range(2):
            ours = image_path(tmp_path, "bootpig", subject, prompt_index, 0)
            unsharded = image_path(cli_run, "bootpig", subject, prompt_index, 0)
            assert Image.open(ours).tobytes() == Image.open(unsharded).tobytes()


def test_changed_settings_are_refused_in_the_same_folder(
    cli_run, tiny_model_dir, dreambooth_dir, tiny_clip_dir, tiny_dino_dir
):
    request = make_request(tiny_model_dir, dreambooth_dir, tiny_clip_dir, tiny_dino_dir, cli_run)
    with pytest.raises(ValueError, match="steps: 2 -> 3"):
        run_evaluation(replace(request, config=request.config.model_copy(update={"steps": 3})))


def test_tracer_segmentation_without_weights_is_a_clear_error(
    tiny_model_dir, dreambooth_dir, tiny_clip_dir, tiny_dino_dir, tmp_path
):
    request = make_request(tiny_model_dir, dreambooth_dir, tiny_clip_dir, tiny_dino_dir, tmp_path / "out")
    request = replace(
        request,
        config=request.config.model_copy(update={"segment": Segmenter.tracer}),
        tracer_weights=tmp_path / "missing.pth",
    )
    with pytest.raises(FileNotFoundError, match="TRACER-B7 weights not found"):
        run_evaluation(request)


def test_the_reference_unet_can_read_the_training_caption(
    cli_run, tiny_model_dir, dreambooth_dir, tiny_clip_dir, tiny_dino_dir, tmp_path
):
    """reference_caption='object': the Reference UNet reads 'a photo of a [class]' (as in training) instead
    of the prompt, so BootPIG's images change while the baseline's would not."""
    config = EvalConfig(model=str(tiny_model_dir), reference_caption="object")
    assert config.reference_prompt_for("backpack") == "a photo of a backpack"
    assert EvalConfig(model=str(tiny_model_dir)).reference_prompt_for("backpack") is None

    request = make_request(tiny_model_dir, dreambooth_dir, tiny_clip_dir, tiny_dino_dir, tmp_path / "out")
    request = replace(
        request,
        subjects=["backpack"],
        prompts=1,
        config=request.config.model_copy(update={"reference_caption": "object"}),
    )
    run_evaluation(request)
    for i in range(2):
        ours = Image.open(image_path(tmp_path / "out", "bootpig", "backpack", 0, i)).tobytes()
        default = Image.open(image_path(cli_run, "bootpig", "backpack", 0, i)).tobytes()
        assert ours != default
