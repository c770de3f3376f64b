"""Training data: deterministic samples, augmented references, sample numbering, bad records."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from model.train import augment
from model.train.augment import EmptyMaskError, augmented_reference
from model.train.config import AugmentationConfig
from model.train.dataset import SampleNumbers, TripletDataset
from model.triplets import (
    REFERENCE_MASKS_DIR,
    REFERENCES_DIR,
    TripletRecord,
    reference_mask_path,
    reference_path,
)

NO_AUGMENTATION = AugmentationConfig(min_area=1.0, hflip=0.0, color_jitter=0.0, random_erasing=0.0)


def object_box(reference: torch.Tensor) -> tuple[int, int]:
    """Width and height of the non-white part of a [0, 1] reference tensor."""
    ys, xs = np.nonzero((reference < 0.98).any(0).numpy())
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def blue_pixels(reference: torch.Tensor) -> int:
    """Strongly blue pixels of a [-1, 1] training reference."""
    return int(((reference[2] > 0.5) & (reference[0] < -0.5)).sum())


def square_on_background() -> tuple[Image.Image, Image.Image]:
    image = Image.new("RGB", (64, 64), (90, 160, 90))
    mask = Image.new("L", (64, 64), 0)
    image.paste((200, 20, 20), (10, 20, 30, 50))  # 20 x 30 red box
    mask.paste(255, (10, 20, 30, 50))
    return image, mask


def test_reference_is_the_object_alone_on_white():
    image, mask = square_on_background()
    torch.manual_seed(0)
    reference = augmented_reference(image, mask, 64, NO_AUGMENTATION)
    assert reference.shape == (3, 64, 64)
    width, height = object_box(reference)
    assert height == 64 and abs(width - round(20 * 64 / 30)) <= 1  # largest size that fits
    background = (reference < 0.98).any(0) == 0
    # Everything outside the object is white (the green background is gone).
    assert abs(background.float().mean().item() - (1 - width / 64)) < 0.02
    assert not ((reference[1] > 0.5) & (reference[0] < 0.5)).any()  # and no green pixel is left


def test_random_resize_respects_min_area_and_moves_the_object():
    image, mask = square_on_background()
    augmentation = NO_AUGMENTATION.model_copy(update={"min_area": 0.25})
    sizes, positions = set(), set()
    for seed in range(20):
        torch.manual_seed(seed)
        reference = augmented_reference(image, mask, 64, augmentation)
        width, height = object_box(reference)
        assert 64 * 0.5 - 2 <= height <= 64
        sizes.add(height)
        ys, xs = np.nonzero((reference < 0.98).any(0).numpy())
        positions.add((int(xs.min()), int(ys.min())))
    assert len(sizes) > 5 and len(positions) > 5


def test_flip_jitter_and_erasing_change_the_reference():
    image, mask = square_on_background()
    torch.manual_seed(0)
    plain = augmented_reference(image, mask, 64, NO_AUGMENTATION)
    for field in ("color_jitter", "random_erasing"):
        torch.manual_seed(0)
        changed = augmented_reference(image, mask, 64, NO_AUGMENTATION.model_copy(update={field: 1.0}))
        assert not torch.equal(changed, plain), field
    image.paste((20, 20, 200), (20, 20, 30, 50))  # right half of the box blue: an asymmetric object
    torch.manual_seed(0)
    plain = augmented_reference(image, mask, 64, NO_AUGMENTATION)
    torch.manual_seed(0)  # same draws, so same size and position: only the flip differs
    flipped = augmented_reference(image, mask, 64, NO_AUGMENTATION.model_copy(update={"hflip": 1.0}))
    ys, xs = np.nonzero((plain < 0.98).any(0).numpy())
    box = (slice(None), slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    assert not torch.equal(flipped, plain)
    torch.testing.assert_close(flipped[box], plain[box].flip(-1), atol=0.02, rtol=0)


def test_empty_mask_is_rejected():
    image, _ = square_on_background()
    with pytest.raises(EmptyMaskError):
        augmented_reference(image, Image.new("L", (64, 64), 0), 64, NO_AUGMENTATION)


def test_samples_are_a_function_of_seed_and_sample_number(triplet_dir):
    dataset = TripletDataset(triplet_dir, 64, seed=3)
    first, again = dataset[5], TripletDataset(triplet_dir, 64, seed=3)[5]
    assert torch.equal(first["reference"], again["reference"]) and first["seed"] == again["seed"]
    assert (
        first["target"].shape == (3, 64, 64) and -1.0 <= first["target"].min() <= first["target"].max() <= 1
    )
    assert first["reference_caption"].startswith("a photo of a ")
    assert dataset[6]["seed"] != first["seed"]
    # Every epoch visits each record once, in a different order.
    epoch0 = [dataset[k]["id"] for k in range(8)]
    epoch1 = [dataset[k]["id"] for k in range(8, 16)]
    assert sorted(epoch0) == sorted(epoch1) == sorted(r.id for r in dataset.records)
    assert epoch0 != epoch1
    full = TripletDataset(triplet_dir, 64, reference_caption="full", seed=3)[5]
    assert full["reference_caption"] == full["caption"]


def test_sample_numbers_cover_each_update_once():
    processes, micro, accumulation = 2, 3, 2
    per_process = [
        list(SampleNumbers(1, 3, micro, accumulation, processes, rank)) for rank in range(processes)
    ]
    batch = processes * micro * accumulation
    assert sorted(per_process[0] + per_process[1]) == list(range(1 * batch, 3 * batch))
    assert len(per_process[0]) == len(SampleNumbers(1, 3, micro, accumulation, processes, 0))


def test_all_bad_records_raise_a_clear_error(tmp_path, triplet_writers):
    make_triplet_folder, write_triplet = triplet_writers
    data = make_triplet_folder(tmp_path / "data", count=0)
    record = write_triplet(data, 0, empty_mask=True)
    dataset = TripletDataset(data, 64)
    with pytest.raises(RuntimeError, match="all 1 samples are bad"):
        dataset[0]
    with pytest.raises(ValueError, match="no triplets"):
        TripletDataset(tmp_path, 64)
    assert record.id == "00000000"


def test_random_erasing_fills_with_the_white_background():
    image, mask = square_on_background()
    erase_only = NO_AUGMENTATION.model_copy(update={"random_erasing": 1.0})
    torch.manual_seed(0)
    plain = augmented_reference(image, mask, 64, NO_AUGMENTATION)
    torch.manual_seed(0)
    erased = augmented_reference(image, mask, 64, erase_only)
    changed = (erased != plain).any(0)
    assert changed.any()
    assert torch.all(erased[:, changed] == 1.0)  # every erased pixel is white, none is noise
    torch.manual_seed(0)
    noisy = augmented_reference(image, mask, 64, erase_only.model_copy(update={"erasing_fill": "noise"}))
    assert (noisy[:, (noisy != plain).any(0)] < 0.99).any()


def test_a_record_with_another_view_gives_a_reference_cut_from_that_view(tmp_path, triplet_writers):
    make_triplet_folder, write_triplet = triplet_writers
    data = make_triplet_folder(tmp_path / "data", count=0)
    record = write_triplet(data, 0)  # a red ball on a grey gradient
    (data / REFERENCES_DIR).mkdir()
    (data / REFERENCE_MASKS_DIR).mkdir()
    view, view_mask = square_on_background()  # the "other view": a red box on green
    view.paste((20, 20, 200), (20, 20, 30, 50))  # half blue: only this image has blue
    view.save(data / reference_path(record.id))
    view_mask.save(data / reference_mask_path(record.id))
    with_view = record.model_copy(
        update={"reference": reference_path(record.id), "reference_mask": reference_mask_path(record.id)}
    )
    (data / "manifest-0-of-1.jsonl").write_text(with_view.model_dump_json() + "\n")
    dataset = TripletDataset(data, 64, augmentation=NO_AUGMENTATION)
    sample, own = dataset[0], TripletDataset(data, 64, augmentation=NO_AUGMENTATION).load(record)
    assert blue_pixels(sample["reference"]) > 100 and blue_pixels(own["reference"]) == 0
    torch.testing.assert_close(sample["target"], own["target"])  # the target is the record's own
    with pytest.raises(ValueError, match="both"):
        TripletRecord.model_validate(record.model_dump() | {"reference": reference_path(record.id)})


def test_rotation_turns_the_object_and_leaves_other_settings_samples_unchanged(monkeypatch):
    image, mask = square_on_background()  # a 20 x 30 box: turned by 90 degrees it is wider than tall
    torch.manual_seed(0)
    turned = NO_AUGMENTATION.model_copy(update={"rotation": 180.0})
    shapes = set()
    for seed in range(12):
        torch.manual_seed(seed)
        width, height = object_box(augmented_reference(image, mask, 64, turned))
        shapes.add("wide" if width > height * 1.2 else "tall" if height > width * 1.2 else "square")
    assert {"wide", "tall"} <= shapes  # turned by various angles, each fitted to the canvas
    torch.manual_seed(0)
    reference = augmented_reference(image, mask, 64, turned)
    assert not ((reference[1] > 0.5) & (reference[0] < 0.5)).any()  # still on white, nothing green
    # With rotation 0 no angle is drawn, so every other setting keeps the samples it gave before.
    draws = []
    monkeypatch.setattr(augment, "_uniform", lambda low, high: draws.append((low, high)) or high)
    augmented_reference(image, mask, 64, NO_AUGMENTATION)
    assert draws == [(1.0, 1.0)]  # the area only
    augmented_reference(image, mask, 64, turned)
    assert draws[1:] == [(-180.0, 180.0), (1.0, 1.0)]
