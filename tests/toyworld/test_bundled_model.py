"""The toy-world model committed in `model/toyworld/assets/model` is what a fresh machine serves, and it
personalizes: its images take the colours of whichever example subject is given as references.

The check is deliberately crude (no toy encoders ship with the model): for each example subject's prompt,
one image per example subject's references, same seed; the pixels that differ between those images are the
object, and their colour histogram must be nearest to the histogram of the references that were given.
Random guessing gets 4 of 16; the untrained pipeline (both UNets = the base UNet) got 3, the committed
model 12 (run N's, measured when it was committed; run G's got 10 and run J's 11; docs/toyworld.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bootpig.settings import Settings
from model.config import resolve_generation_config
from model.generate import generate
from model.loading import load_pipeline
from model.served import ModelKind

WHITE = 235  # reference pixels with every channel above this are background


def reference_images(subject: Path) -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in sorted(subject.glob("*.png"))]


def colour_histogram(pixels: np.ndarray) -> np.ndarray:
    counts = np.histogramdd(pixels // 64, bins=(4, 4, 4), range=((0, 4),) * 3)[0].ravel()
    return counts / counts.sum()


def object_histogram(subject: Path) -> np.ndarray:
    pixels = np.concatenate([np.asarray(image).reshape(-1, 3) for image in reference_images(subject)])
    return colour_histogram(pixels[(pixels < WHITE).any(axis=1)].astype(float))


@pytest.fixture(scope="module")
def bundled():
    choice = Settings(model=None).model_choice()
    assert choice.kind is ModelKind.toy_world  # the default of a fresh clone: the committed model
    pipe, info = load_pipeline(
        choice.source, device="cpu", dtype="fp32", local_files_only=True, kind=choice.kind
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe, Path(choice.source)


def test_the_bundled_model_is_small_and_defaults_to_the_references_it_was_trained_with(bundled):
    pipe, folder = bundled
    weights = sum(path.stat().st_size for path in folder.rglob("*.safetensors"))
    assert weights <= 10 * 1024 * 1024  # the limit for committed weights
    config = resolve_generation_config({"prompt": "a photo of a ball"}, pipe.reference_size, pipe.method)
    assert (config.height, config.reference_schedule, config.reference_timestep) == (64, "once", 250)


def test_the_bundled_model_copies_the_colours_of_the_given_subject(bundled):
    pipe, folder = bundled
    subjects = sorted(path for path in (folder / "examples").iterdir() if path.is_dir())
    assert len(subjects) == 4
    targets = [object_histogram(subject) for subject in subjects]
    matched = 0
    for prompted in subjects:
        shape = prompted.name.split("-", 1)[1]
        values = {"prompt": f"a photo of a {shape}, on a grassy meadow", "seed": 0, "steps": 15}
        config = resolve_generation_config(values | {"segment": "none"}, pipe.reference_size, pipe.method)
        images = np.stack(
            [np.asarray(generate(pipe, reference_images(s), config).images[0]) for s in subjects]
        ).astype(float)
        common = np.median(images, axis=0)  # what the references do not change: the scene
        for given, image in enumerate(images):
            changed = np.abs(image - common).sum(axis=-1) > 60
            distances = [np.abs(colour_histogram(image[changed]) - t).sum() for t in targets]
            matched += int(np.argmin(distances) == given)
    assert matched >= 8, f"{matched} of 16 images nearest to their own references (chance: 4)"
