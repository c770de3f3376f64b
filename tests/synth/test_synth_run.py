"""`bootpig synth` end to end with tiny random models: manifest, rejections, shards, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bootpig.cli import main
from model.references import object_on_white
from model.shards import parse_shard
from model.synth.run import (
    CAPTIONS_FILE,
    load_captions,
    rejected_name,
    shard_indices,
    summary_name,
)
from model.train.dataset import TripletDataset
from model.triplets import manifest_name, read_manifest

KEEP_ALL = ["--mask-threshold", "0", "--border-margin", "0", "--min-area", "0", "--max-area", "1"]


@pytest.fixture
def synth(tiny_model_dir, tiny_clipseg_dir, monkeypatch):
    """Runs `bootpig synth` in-process with the tiny models, 64 px, 2 steps, no hub."""
    monkeypatch.setenv("BOOTPIG_LOCAL_FILES_ONLY", "1")
    from bootpig.settings import get_settings

    get_settings.cache_clear()

    def run(out: Path, *extra: str, count: int = 4) -> dict:
        argv = ["synth", "--model", str(tiny_model_dir), "--segmenter", str(tiny_clipseg_dir)]
        argv += ["--captions", "offline", "--count", str(count), "--out", str(out), "--resolution", "64"]
        argv += ["--steps", "2", "--batch-size", "2", "--device", "cpu", "--no-progress", *extra]
        assert main(argv) == 0
        shard = extra[extra.index("--shard") + 1] if "--shard" in extra else "0/1"
        return json.loads((out / summary_name(*parse_shard(shard))).read_text())

    yield run
    get_settings.cache_clear()


def test_end_to_end_writes_a_manifest_training_can_read(synth, tmp_path, tiny_model_dir, tiny_clipseg_dir):
    out = tmp_path / "triplets"
    summary = synth(out, *KEEP_ALL, count=3)
    assert summary["kept"] == 3 and summary["rendered"] == 3 and summary["rejected"] == {}
    records = list(read_manifest(out))
    captions = load_captions(out)
    assert [r.id for r in records] == ["00000000", "00000001", "00000002"]
    assert (out / manifest_name(0, 1)).is_file()
    for record, caption in zip(records, captions, strict=True):
        assert (record.caption, record.object) == (caption.text, caption.object)
        assert record.t2i_model == str(tiny_model_dir) and record.segmenter == str(tiny_clipseg_dir)
        assert isinstance(record.seed, int)
        target = Image.open(out / record.target)
        mask = Image.open(out / record.mask)
        assert (target.mode, target.size, mask.mode, mask.size) == ("RGB", (64, 64), "L", (64, 64))
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
        assert object_on_white(target, mask, 32).size == (32, 32)  # what training does with a triplet
    assert len({r.seed for r in records}) == 3
    dataset = TripletDataset(out, resolution=32)
    assert len(dataset) == 3
    sample = dataset[0]
    assert sample["target"].shape == (3, 32, 32) and sample["reference"].shape == (3, 32, 32)
    assert sample["skipped"] == [] and sample["reference_caption"].startswith("a photo of a")


def test_rejections_are_counted_logged_and_never_written(synth, tmp_path):
    out = tmp_path / "triplets"
    summary = synth(out, "--mask-threshold", "1", count=3)  # no probability exceeds 1: every mask is empty
    assert summary["kept"] == 0 and summary["rejected"] == {"empty_mask": 3}
    assert list(read_manifest(out)) == []
    assert list((out / "targets").iterdir()) == []
    logged = [json.loads(line) for line in (out / rejected_name(0, 1)).read_text().splitlines()]
    assert [(row["id"], row["reason"]) for row in logged] == [(f"{i:08d}", "empty_mask") for i in range(3)]


def test_shards_split_disjointly_and_render_the_same_images(synth, tmp_path):
    assert list(shard_indices(7, 1, 3)) == [1, 4]
    assert sorted(i for s in range(3) for i in shard_indices(7, s, 3)) == list(range(7))
    with pytest.raises(ValueError, match="need 0 <= i < n"):
        parse_shard("2/2")

    sharded, whole = tmp_path / "sharded", tmp_path / "whole"
    first = synth(sharded, *KEEP_ALL, "--shard", "0/2", count=5)
    second = synth(sharded, *KEEP_ALL, "--shard", "1/2", count=5)
    assert (first["assigned"], second["assigned"]) == (3, 2)
    ids = {
        shard: {
            json.loads(line)["id"] for line in (sharded / manifest_name(shard, 2)).read_text().splitlines()
        }
        for shard in (0, 1)
    }
    assert ids[0] == {"00000000", "00000002", "00000004"} and ids[1] == {"00000001", "00000003"}
    synth(whole, *KEEP_ALL, count=5)
    for record in read_manifest(whole):  # a sample's image does not depend on its shard or batch
        a = np.asarray(Image.open(whole / record.target))
        b = np.asarray(Image.open(sharded / record.target))
        np.testing.assert_array_equal(a, b)


def test_rerun_resumes_without_rendering_finished_samples(synth, tmp_path):
    out = tmp_path / "triplets"
    synth(out, "--border-margin", "0", "--min-area", "0", "--max-area", "1", count=4)
    kept_before = {r.id for r in read_manifest(out)}
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "targets").iterdir()}
    again = synth(out, "--border-margin", "0", "--min-area", "0", "--max-area", "1", count=4)
    assert again["rendered"] == 0 and again["already_done"] == 4 and again["kept"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "targets").iterdir()} == stamps
    more = synth(out, "--border-margin", "0", "--min-area", "0", "--max-area", "1", count=6)
    assert more["already_done"] == 4 and more["rendered"] == 2
    assert len(load_captions(out)) == 6
    assert {r.id for r in read_manifest(out)} >= kept_before
    assert len((out / CAPTIONS_FILE).read_text().splitlines()) == 6


def test_bad_arguments_are_clear_errors(synth, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BOOTPIG_MODEL", raising=False)
    assert main(["synth", "--count", "2", "--out", str(tmp_path)]) == 2  # no text-to-image model
    assert "give --model" in capsys.readouterr().err
    assert not (tmp_path / CAPTIONS_FILE).exists()  # checked before any caption is made
    assert main(["synth", "--count", "2", "--out", str(tmp_path), "--shard", "3/2"]) == 2
    assert "need 0 <= i < n" in capsys.readouterr().err
    assert main(["synth", "--count", "2", "--out", str(tmp_path), "--min-area", "0.9"]) == 2
    assert "min_area" in capsys.readouterr().err


def test_llm_captions_are_made_once_for_all_shards(chat_server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BOOTPIG_SYNTH_LLM_API_KEY", "sk-local")
    chat_server.reply_with(
        "A photo of a wicker basket, next to a garden path\n"
        "A photo of a red toy robot, sitting on a classroom desk\n"
        "A photo of a brass telescope, on top of a rooftop terrace at night\n"
    )
    out = tmp_path / "triplets"
    base = ["synth", "--captions", "openai", "--llm-base-url", chat_server.url, "--llm-model", "local-llm"]
    base += ["--count", "3", "--out", str(out)]
    assert (
        main([*base, "--model", "unused", "--shard", "0/2"]) == 2
    )  # LLM output is not reproducible: shards must share a list
    assert "--captions-only" in capsys.readouterr().err
    assert main([*base, "--captions-only"]) == 0
    assert [c.object for c in load_captions(out)] == ["wicker basket", "red toy robot", "brass telescope"]
    request = chat_server.requests[0]
    assert request["auth"] == "Bearer sk-local" and request["body"]["model"] == "local-llm"
    assert main([*base, "--shard", "1/2", "--captions-only"]) == 0  # now every shard reads the file
    assert len(chat_server.requests) == 1


def test_an_unreachable_llm_endpoint_is_an_error_not_a_traceback(tmp_path, capsys, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # skip the retry back-off
    argv = ["synth", "--captions", "openai", "--llm-base-url", f"http://127.0.0.1:{port}/v1"]
    assert main([*argv, "--count", "2", "--out", str(tmp_path), "--captions-only"]) == 1
    assert "chat endpoint" in capsys.readouterr().err
