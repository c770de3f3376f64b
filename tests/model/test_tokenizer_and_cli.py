"""The offline tokenizer matches open_clip's, and `bootpig generate` works end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import open_clip
import pytest
from PIL import Image

from model.tokenizer import build_clip_tokenizer


@pytest.mark.parametrize(
    "text", ["a photo of a dog in the snow", "backpack!! on the 3rd-floor, héllo", "A CAT with sunglasses 😎"]
)
def test_offline_tokenizer_matches_open_clip(text):
    ours = build_clip_tokenizer()(text).input_ids
    theirs = open_clip.tokenize([text])[0].tolist()
    assert ours == theirs[: len(ours)]
    assert ours[-1] == 49407


def test_tokenizer_reduced_to_a_corpus_tokenizes_it_as_clip_does_and_anything_else_without_unknowns():
    corpus = ["A photo of a star, lying on a red carpet", "a photo of an umbrella, next to a sandy beach"]
    full, reduced = build_clip_tokenizer(), build_clip_tokenizer(corpus)
    assert 512 < len(reduced) < 600  # the byte symbols, the corpus's merges, two special tokens
    for text in corpus:
        assert reduced.tokenize(text) == full.tokenize(text)
    for text in ["a dog in the snow", "héllo 😎 sneakers!!"]:
        pieces = reduced.tokenize(text)
        assert "".join(pieces) == "".join(full.tokenize(text))  # the same bytes, in smaller pieces
        assert len(pieces) > len(full.tokenize(text))
        ids = reduced(text).input_ids
        assert reduced.unk_token_id not in ids[1:-1] and max(ids) < len(reduced)
    assert (reduced.bos_token_id, reduced.eos_token_id) == (len(reduced) - 2, len(reduced) - 1)


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "bootpig.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def run_generate(model, refs, **flags):
    """`bootpig generate --model M --ref … --flag value …` (underscores in flag names become dashes)."""
    args = ["generate", "--model", str(model)]
    for ref in refs:
        args += ["--ref", str(ref)]
    for name, value in flags.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return run_cli(*args)


def test_generate_cli_writes_images_of_requested_size(tiny_model_dir, dog_photos, tmp_path):
    out = tmp_path / "out" / "dog.png"
    result = run_generate(
        tiny_model_dir, dog_photos[:2], prompt="a dog in the snow", seed=7, steps=2, height=64, width=96,
        num_images=2, segment="none", out=out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "seed 7" in result.stdout
    for i in range(2):
        with Image.open(tmp_path / "out" / f"dog-{i}.png") as image:
            assert image.size == (96, 64)


def test_generate_cli_reports_bad_input_without_traceback(tiny_model_dir, dog_photos, tmp_path):
    result = run_generate(
        tiny_model_dir, dog_photos[:1], prompt="a dog", steps=0, segment="none", out=tmp_path / "x.png"
    )
    assert result.returncode == 2
    assert "steps" in result.stderr and "Traceback" not in result.stderr


def test_generate_cli_missing_tracer_weights_is_clear(tiny_model_dir, dog_photos, tmp_path):
    result = run_generate(
        tiny_model_dir, dog_photos[:1], prompt="a dog", steps=1, segment="tracer",
        tracer_weights=tmp_path / "none.pth", out=tmp_path / "x.png",
    )  # fmt: skip
    assert result.returncode == 2
    assert "TRACER-B7 weights not found" in result.stderr and "Traceback" not in result.stderr


def test_make_tiny_model_cli_writes_loadable_layout(tmp_path):
    result = run_cli("make-tiny-model", str(tmp_path / "tiny"))
    assert result.returncode == 0, result.stderr
    for sub in ["vae", "text_encoder", "tokenizer", "scheduler", "unet", "ref_unet", "base_unet"]:
        assert (tmp_path / "tiny" / sub).is_dir(), sub
    from model.pipeline import BootPIGPipeline

    pipe = BootPIGPipeline.from_pretrained(tmp_path / "tiny", local_files_only=True)
    assert pipe.has_trained_weights and pipe.reference_size == 64


def test_generate_cli_reference_schedule_flag_is_validated(tiny_model_dir, dog_photos, tmp_path):
    result = run_generate(
        tiny_model_dir, dog_photos[:1], prompt="a dog", steps=1, segment="none", reference_schedule="twice",
        out=tmp_path / "x.png",
    )  # fmt: skip
    assert result.returncode == 2
    assert "reference_schedule" in result.stderr and "Traceback" not in result.stderr
    result = run_generate(
        tiny_model_dir, dog_photos[:1], prompt="a dog", steps=2, segment="none", reference_schedule="once",
        reference_size=96, out=tmp_path / "once.png",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "once.png").is_file()
