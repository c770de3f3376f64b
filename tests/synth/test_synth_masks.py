"""The mask filter on synthetic masks, and CLIPSeg probabilities from a tiny random model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model.synth.config import MaskFilter
from model.synth.segment import ClipSegSegmenter, RejectReason, best_mask, check_sample, largest_component

RULES = MaskFilter()  # the defaults: 25 px at 512 px, 2 %..80 % of the area
GREY = np.full((512, 512, 3), 128, dtype=np.uint8)


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_a_centred_object_is_kept() -> None:
    assert check_sample(GREY, square(512, 156, 156, 200), RULES) is None


@pytest.mark.parametrize(
    ("mask", "reason"),
    [
        (np.zeros((512, 512), bool), RejectReason.empty_mask),
        (square(512, 250, 250, 20), RejectReason.too_small),  # 0.15 % of the image
        (square(512, 26, 26, 460), RejectReason.too_large),  # 81 %
        (square(512, 24, 200, 100), RejectReason.touches_border),  # 24 px from the top edge
        (square(512, 200, 400, 100), RejectReason.touches_border),  # reaches the right edge
        (square(512, 200, 388, 100), RejectReason.touches_border),  # 24 px from the right edge
    ],
)
def test_bad_masks_are_rejected_with_their_reason(mask: np.ndarray, reason: RejectReason) -> None:
    assert check_sample(GREY, mask, RULES) is reason


def test_margin_boundary_and_scaling_with_resolution() -> None:
    assert check_sample(GREY, square(512, 25, 200, 100), RULES) is None  # exactly 25 px away is fine
    assert RULES.margin_pixels(512, 512) == 25
    assert RULES.margin_pixels(1024, 768) == 38
    assert RULES.margin_pixels(64, 64) == 3
    small = np.full((64, 64, 3), 128, dtype=np.uint8)
    assert check_sample(small, square(64, 3, 20, 20), RULES) is None
    assert check_sample(small, square(64, 2, 20, 20), RULES) is RejectReason.touches_border


def test_black_images_are_rejected_before_their_masks_are_looked_at() -> None:
    black = np.zeros((512, 512, 3), dtype=np.uint8)
    assert check_sample(black, square(512, 156, 156, 200), RULES) is RejectReason.black_image
    nearly_black = black.copy()
    nearly_black[0, 0] = 3
    assert check_sample(nearly_black, np.zeros((512, 512), bool), RULES) is RejectReason.black_image


def test_thresholds_are_configurable_and_validated() -> None:
    permissive = MaskFilter(border_margin=0, min_area=0.0, max_area=1.0)
    assert check_sample(GREY, np.ones((512, 512), bool), permissive) is None
    assert check_sample(GREY, np.zeros((512, 512), bool), permissive) is RejectReason.empty_mask
    with pytest.raises(ValueError, match="min_area"):
        MaskFilter(min_area=0.5, max_area=0.4)


def test_best_mask_keeps_the_largest_blob_above_the_threshold() -> None:
    probabilities = np.zeros((64, 64), dtype=np.float32)
    probabilities[10:30, 10:30] = 0.9  # the object
    probabilities[50:53, 50:53] = 0.95  # a speck elsewhere
    probabilities[40:60, 5:25] = 0.3  # below the threshold
    mask = best_mask(probabilities, 0.5)
    assert mask.sum() == 400 and mask[10:30, 10:30].all()
    assert not largest_component(np.zeros((8, 8), bool)).any()


def test_clipseg_probabilities_come_back_at_image_size(tiny_clipseg_dir) -> None:
    segmenter = ClipSegSegmenter(tiny_clipseg_dir, "cpu", local_files_only=True)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)) for _ in range(3)]
    probabilities = segmenter.probabilities(images, ["red backpack", "dog", "green ceramic teapot"])
    assert probabilities.shape == (3, 96, 96) and probabilities.dtype == np.float32
    assert 0.0 <= probabilities.min() and probabilities.max() <= 1.0
    single = segmenter.probabilities(images[:1], ["red backpack"])
    np.testing.assert_allclose(single[0], probabilities[0], atol=1e-5)  # batching does not change results
    with pytest.raises(ValueError, match="phrases"):
        segmenter.probabilities(images, ["dog"])


def test_settings_come_from_the_environment(monkeypatch) -> None:
    from bootpig.cli import build_parser
    from model.synth.config import SynthSettings

    monkeypatch.setenv("BOOTPIG_SYNTH_MASK__MIN_AREA", "0.1")
    monkeypatch.setenv("BOOTPIG_SYNTH_SEGMENTER", "/models/clipseg")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    settings = SynthSettings()
    assert settings.mask.min_area == 0.1 and settings.mask.border_margin == 25
    assert settings.segmenter == "/models/clipseg" and settings.llm_api_key.get_secret_value() == "sk-env"
    args = build_parser().parse_args(["synth", "--count", "1", "--out", "x"])
    assert (args.min_area, args.segmenter, args.resolution) == (0.1, "/models/clipseg", 512)
