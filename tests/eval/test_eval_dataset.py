"""The DreamBooth prompts file is read as the dataset defines it; only subjects on disk are evaluated."""

from __future__ import annotations

import shutil

import pytest

from model.eval.dataset import PROMPTS_FILE, format_prompt, load_subjects, parse_prompts_file, subject_prompts


def test_prompts_file_gives_classes_and_both_prompt_lists(dreambooth_dir):
    prompts = parse_prompts_file(dreambooth_dir / PROMPTS_FILE)
    assert len(prompts.classes) == 30
    assert prompts.classes["bear_plushie"] == "stuffed animal"
    assert prompts.classes["dog8"] == "dog"
    assert len(prompts.object_prompts) == len(prompts.live_prompts) == 25
    assert prompts.object_prompts[0] == "a {0} {1} in the jungle"
    assert "a {0} {1} wearing a santa hat" in prompts.live_prompts
    assert "a {0} {1} wearing a santa hat" not in prompts.object_prompts


def test_zero_shot_prompts_put_the_class_noun_in_place_of_token_and_class(dreambooth_dir):
    subjects, prompts = load_subjects(dreambooth_dir, ["bear_plushie", "cat"])
    plushie, cat = subjects
    assert not plushie.is_live and cat.is_live
    assert subject_prompts(plushie, prompts)[:2] == [
        "a stuffed animal in the jungle",
        "a stuffed animal in the snow",
    ]
    assert subject_prompts(plushie, prompts)[-1] == "a cube shaped stuffed animal"
    assert subject_prompts(cat, prompts)[10] == "a cat wearing a red hat"
    assert subject_prompts(cat, prompts, limit=3) == [
        "a cat in the jungle",
        "a cat in the snow",
        "a cat on the beach",
    ]
    assert format_prompt("a red {0} {1}", "backpack", "sks") == "a red sks backpack"


def test_only_subjects_with_photos_are_loaded(dreambooth_dir):
    subjects, prompts = load_subjects(dreambooth_dir)
    names = [s.name for s in subjects]
    on_disk = sorted(p.name for p in dreambooth_dir.iterdir() if p.is_dir() and p.name in prompts.classes)
    assert names == on_disk and len(names) < len(prompts.classes)
    assert all(s.images and all(p.suffix == ".jpg" for p in s.images) for s in subjects)
    with pytest.raises(ValueError, match="teapot"):
        load_subjects(dreambooth_dir, ["dog", "teapot"])


def test_bad_dataset_folders_give_clear_errors(tmp_path, dreambooth_dir):
    with pytest.raises(FileNotFoundError, match=PROMPTS_FILE):
        load_subjects(tmp_path)
    (tmp_path / PROMPTS_FILE).write_text("Classes\n\nsubject_name,class\ndog,dog\n")
    with pytest.raises(ValueError, match="0 object prompts"):
        load_subjects(tmp_path)
    shutil.copy(dreambooth_dir / PROMPTS_FILE, tmp_path / PROMPTS_FILE)
    (tmp_path / "not_a_subject").mkdir()
    (tmp_path / "dog").mkdir()  # a subject folder without photos does not count
    with pytest.raises(ValueError, match="no subject folder"):
        load_subjects(tmp_path)
