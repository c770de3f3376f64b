"""CLIP-T / CLIP-I / DINO arithmetic against hand-computed cosines, and through real (tiny) encoders."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from model.eval.metrics import (
    cosine_matrix,
    mean,
    reference_self_similarity,
    subject_fidelity,
    text_alignment,
)

A = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
B = torch.tensor([[0.0, 2.0], [3.0, 4.0]])


def test_cosines_match_hand_computation():
    expected = [[0.0, 3 / 5], [2 / (math.sqrt(2) * 2), 7 / (math.sqrt(2) * 5)]]
    assert cosine_matrix(A, B).flatten().tolist() == pytest.approx([v for row in expected for v in row])
    # CLIP-T pairs image i with prompt i only.
    assert text_alignment(A, B).tolist() == pytest.approx([0.0, 100 * 7 / (math.sqrt(2) * 5)])
    # CLIP-I / DINO: each generated image against every real image, averaged.
    assert subject_fidelity(A, B).tolist() == pytest.approx(
        [100 * (0 + 0.6) / 2, 100 * (1 / math.sqrt(2) + 7 / (math.sqrt(2) * 5)) / 2]
    )


def test_reference_row_leaves_out_each_image_itself():
    real = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    half = 100 / math.sqrt(2)
    assert reference_self_similarity(real).tolist() == pytest.approx([half / 2, half / 2, half])
    assert mean(reference_self_similarity(real)) == pytest.approx(2 * half / 3)


def test_metric_inputs_are_checked():
    with pytest.raises(ValueError, match="one text embedding per image"):
        text_alignment(A, B[:1])
    with pytest.raises(ValueError, match="two real images"):
        reference_self_similarity(A[:1])
    with pytest.raises(ValueError, match="no values"):
        mean([])


def test_identical_images_score_100_and_different_ones_less(tiny_encoders, dog_photos, dreambooth_dir):
    dog = Image.open(dog_photos[0])
    backpack = Image.open(sorted((dreambooth_dir / "backpack").glob("*.jpg"))[0])
    for embed in (tiny_encoders.clip_images, tiny_encoders.dino_images):
        same = subject_fidelity(embed([dog]), embed([dog.copy()]))
        other = subject_fidelity(embed([backpack]), embed([dog]))
        assert same.item() == pytest.approx(100.0, abs=1e-4)
        assert other.item() < 99.9


def test_clip_t_uses_the_projected_image_and_text_embeddings(tiny_encoders, dog_photos):
    model, processor = tiny_encoders.clip_model, tiny_encoders.clip_processor
    image = Image.open(dog_photos[0]).convert("RGB")
    with torch.no_grad():
        inputs = processor(text=["a dog in the snow"], images=[image], return_tensors="pt", padding=True)
        outputs = model(**inputs)
    expected = torch.nn.functional.cosine_similarity(outputs.image_embeds, outputs.text_embeds).item() * 100
    got = text_alignment(tiny_encoders.clip_images([image]), tiny_encoders.clip_texts(["a dog in the snow"]))
    assert got.item() == pytest.approx(expected, abs=1e-3)
    assert tiny_encoders.clip_images([image]).shape == (1, model.config.projection_dim)
    assert tiny_encoders.dino_images([image]).shape == (1, tiny_encoders.dino_model.config.hidden_size)
