"""Rendered data banks, cached as .npz so every stage (and every rerun) trains on the same pixels."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from model.toyworld.world import SCENE_NAMES, SHAPES, Pose, Subject, random_sample, render


@dataclass
class SceneBank:
    """Random subjects in random scenes: images (N, H, W, 3) uint8, masks, labels and captions."""

    images: np.ndarray
    masks: np.ndarray
    shapes: np.ndarray  # index into SHAPES
    scenes: np.ndarray  # index into SCENE_NAMES
    captions: list[str]

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class ViewBank:
    """`views` renders of each of N subjects (other pose, on white or in a scene): (N, V, H, W, 3)."""

    images: np.ndarray
    shapes: np.ndarray


def scene_bank(path: Path, count: int, size: int, seed: int, progress: bool = True) -> SceneBank:
    """Load the bank at `path`, or render it (seeded) and save it there."""
    if path.is_file():
        data = np.load(path)
        captions = json.loads(path.with_suffix(".json").read_text())
        return SceneBank(data["images"], data["masks"], data["shapes"], data["scenes"], captions)
    rng = np.random.default_rng(seed)
    samples = [
        random_sample(rng, size) for _ in tqdm(range(count), desc="render scenes", disable=not progress)
    ]
    bank = SceneBank(
        images=np.stack([np.asarray(s.rendered.image) for s in samples]),
        masks=np.stack([s.rendered.mask for s in samples]),
        shapes=np.array([SHAPES.index(s.subject.shape) for s in samples]),
        scenes=np.array([SCENE_NAMES.index(s.scene) for s in samples]),
        captions=[s.caption for s in samples],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=bank.images, masks=bank.masks, shapes=bank.shapes, scenes=bank.scenes)
    path.with_suffix(".json").write_text(json.dumps(bank.captions))
    return bank


def view_bank(path: Path, subjects: int, views: int, size: int, seed: int, progress: bool = True) -> ViewBank:
    """Several views per random subject, half on white and half in random scenes (cached at `path`)."""
    if path.is_file():
        data = np.load(path)
        return ViewBank(data["images"], data["shapes"])
    rng = np.random.default_rng(seed)
    images, shapes = [], []
    for _ in tqdm(range(subjects), desc="render views", disable=not progress):
        subject = Subject.sample(rng)
        scenes = ["white" if v % 2 == 0 else str(rng.choice(SCENE_NAMES)) for v in range(views)]
        images.append(
            [np.asarray(render(subject, s, Pose.sample(rng, size), size, rng).image) for s in scenes]
        )
        shapes.append(SHAPES.index(subject.shape))
    bank = ViewBank(np.asarray(images, dtype=np.uint8), np.array(shapes))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=bank.images, shapes=bank.shapes)
    return bank


def as_tensor(images: np.ndarray):
    """uint8 (..., H, W, 3) -> float tensor (..., 3, H, W) in [-1, 1]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 127.5 - 1.0
    return x.movedim(-1, -3)
