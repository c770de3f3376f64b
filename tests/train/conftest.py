"""A small triplet folder (coloured shapes on backgrounds, with masks) and a fast training config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from model.train.config import TrainConfig
from model.triplets import TripletRecord, append_record, mask_path, target_path

SHAPES = [
    ("red", "ellipse", (200, 30, 30)),
    ("blue", "rectangle", (30, 40, 200)),
    ("green", "ellipse", (30, 170, 60)),
    ("yellow", "rectangle", (230, 210, 20)),
    ("purple", "ellipse", (140, 40, 160)),
    ("orange", "rectangle", (240, 140, 20)),
    ("cyan", "ellipse", (20, 200, 210)),
    ("black", "rectangle", (15, 15, 15)),
]


def write_triplet(directory: Path, index: int, size: int = 64, empty_mask: bool = False) -> TripletRecord:
    """A shape on a noisy gradient background, its mask, and the manifest line."""
    colour_name, shape, colour = SHAPES[index % len(SHAPES)]
    rng = np.random.default_rng(index)
    background = np.linspace(60, 220, size)[None, :, None] * np.ones((size, 1, 3))
    background = np.clip(background + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(background)
    mask = Image.new("L", (size, size), 0)
    x0, y0 = 8 + index % 3 * 6, 10 + index % 4 * 5
    box = (x0, y0, x0 + 24 + index % 5 * 3, y0 + 20 + index % 2 * 10)
    for canvas, fill in ((ImageDraw.Draw(image), colour), (ImageDraw.Draw(mask), 255)):
        getattr(canvas, shape)(box, fill=fill)
    sample_id = f"{index:08d}"
    image.save(directory / target_path(sample_id))
    (Image.new("L", (size, size), 0) if empty_mask else mask).save(directory / mask_path(sample_id))
    obj = f"{colour_name} {'ball' if shape == 'ellipse' else 'box'}"
    record = TripletRecord(
        id=sample_id,
        target=target_path(sample_id),
        mask=mask_path(sample_id),
        caption=f"A photo of a {obj}, on a table in a room",
        object=obj,
    )
    append_record(directory, record)
    return record


def make_triplet_folder(directory: Path, count: int = 8) -> Path:
    (directory / "targets").mkdir(parents=True)
    (directory / "masks").mkdir()
    for index in range(count):
        write_triplet(directory, index)
    return directory


@pytest.fixture(scope="session")
def triplet_writers():
    """The folder helpers, for tests that build their own (e.g. broken) triplet folders."""
    return make_triplet_folder, write_triplet


@pytest.fixture(scope="session")
def triplet_dir(tmp_path_factory) -> Path:
    return make_triplet_folder(tmp_path_factory.mktemp("triplets"))


@pytest.fixture
def train_config(tiny_model_dir, triplet_dir, tmp_path) -> TrainConfig:
    """Tiny model, 64 px, batch 4 as 2 x 2 accumulation, no workers: a step takes a fraction of a second."""
    return TrainConfig(
        model=str(tiny_model_dir),
        data=triplet_dir,
        output=tmp_path / "run",
        local_files_only=True,
        resolution=64,
        batch_size=4,
        micro_batch_size=2,
        max_steps=4,
        checkpoint_every=2,
        num_workers=0,
    )


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny models run ~20x faster on one thread than with threads fighting over 2 shared cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
