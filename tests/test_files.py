"""Atomic writes: a reader sees the old file or the whole new one, never a partial one or a leftover."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model.files import save_image_atomically, write_atomically, write_text_atomically


def fail_half_way(tmp):
    tmp.write_text('{"half": ')
    raise OSError("disk full")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "run.json"
    write_text_atomically(target, '{"old": 1}')
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, fail_half_way)
    assert target.read_text() == '{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_a_failed_first_write_leaves_nothing_under_the_final_name(tmp_path):
    target = tmp_path / "new" / "folder" / "summary.json"
    with pytest.raises(OSError):
        write_atomically(target, fail_half_way)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_text_and_images_arrive_whole(tmp_path):
    write_text_atomically(tmp_path / "a" / "captions.jsonl", "één\n")
    assert (tmp_path / "a" / "captions.jsonl").read_text(encoding="utf-8") == "één\n"
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    save_image_atomically(Image.fromarray(pixels), tmp_path / "b" / "target.png")
    with Image.open(tmp_path / "b" / "target.png") as image:
        assert image.format == "PNG" and np.array_equal(np.asarray(image), pixels)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["captions.jsonl", "target.png"]
