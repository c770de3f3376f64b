"""A small CNN that names the shape and the scene of a toy-world image: the quality bar's judge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from model.toyworld.data import SceneBank, as_tensor
from model.toyworld.fit import batches, fit
from model.toyworld.world import SCENE_NAMES, SHAPES


class ShapeSceneClassifier(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()

        def block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU()
            )

        # global *max* pooling: a shape is told by a few local cues (a tip, a corner, a hole), wherever
        # the object is; average pooling drowns them in the background and trains far slower
        self.features = nn.Sequential(
            block(3, width, 2), block(width, 2 * width, 2), block(2 * width, 2 * width),
            block(2 * width, 4 * width, 2), block(4 * width, 4 * width),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.shape_head = nn.Linear(4 * width, len(SHAPES))
        self.scene_head = nn.Linear(4 * width, len(SCENE_NAMES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.shape_head(h), self.scene_head(h)

    @torch.no_grad()
    def predict(self, images: list[Image.Image], size: int = 64) -> tuple[list[str], list[str]]:
        """Shape and scene names of PIL images (resized to the training size)."""
        self.eval()
        arrays = np.stack([np.asarray(im.convert("RGB").resize((size, size))) for im in images])
        shapes, scenes = [], []
        for start in range(0, len(arrays), 64):
            shape_logits, scene_logits = self(as_tensor(arrays[start : start + 64]))
            shapes += [SHAPES[i] for i in shape_logits.argmax(-1).tolist()]
            scenes += [SCENE_NAMES[i] for i in scene_logits.argmax(-1).tolist()]
        return shapes, scenes


def train_classifier(bank: SceneBank, steps: int, seed: int, progress: bool = True) -> ShapeSceneClassifier:
    torch.manual_seed(seed)
    model = ShapeSceneClassifier()
    pick = batches(len(bank), 32, seed)
    shapes, scenes = torch.from_numpy(bank.shapes), torch.from_numpy(bank.scenes)

    def loss_at(step: int) -> torch.Tensor:
        idx = pick(step)
        x = as_tensor(bank.images[idx.numpy()])
        # generated images are a little noisy and blurred: do not rely on exact pixels
        blurred = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="bilinear")
        x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, blurred, x) + 0.05 * torch.randn_like(x)
        shape_logits, scene_logits = model(x)
        ce = nn.functional.cross_entropy
        return ce(shape_logits, shapes[idx]) + ce(scene_logits, scenes[idx])

    fit(model.parameters(), loss_at, steps, 2e-3, "classifier", progress=progress)
    return model.eval()


def accuracy(model: ShapeSceneClassifier, bank: SceneBank) -> tuple[float, float]:
    """Shape and scene accuracy on a held-out bank."""
    with torch.no_grad():
        hits_shape = hits_scene = 0
        for start in range(0, len(bank), 128):
            shape_logits, scene_logits = model(as_tensor(bank.images[start : start + 128]))
            hits_shape += int((shape_logits.argmax(-1).numpy() == bank.shapes[start : start + 128]).sum())
            hits_scene += int((scene_logits.argmax(-1).numpy() == bank.scenes[start : start + 128]).sum())
    return hits_shape / len(bank), hits_scene / len(bank)


def save_classifier(model: ShapeSceneClassifier, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(path))


def load_classifier(path: Path) -> ShapeSceneClassifier:
    from safetensors.torch import load_file

    model = ShapeSceneClassifier()
    model.load_state_dict(load_file(str(path)))
    return model.eval()
