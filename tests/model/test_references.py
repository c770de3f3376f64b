"""Reference preparation: EXIF orientation, object on white, TRACER loading without downloads."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from model.references import (
    TracerSegmenter,
    load_image,
    object_on_white,
    prepare_references,
)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif)
    assert load_image(buf.getvalue()).size == (20, 40)


def test_transparent_png_becomes_white():
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    assert load_image(buf.getvalue()).getpixel((3, 3)) == (255, 255, 255)


def test_object_on_white_crops_to_mask_box_and_pads_square():
    image = Image.new("RGB", (100, 60), (90, 90, 90))
    image.paste((200, 0, 0), (20, 10, 60, 30))  # a 40x20 red object
    mask = Image.new("L", (100, 60), 0)
    mask.paste(255, (20, 10, 60, 30))
    out = np.asarray(object_on_white(image, mask, 64))
    assert out.shape == (64, 64, 3)
    assert tuple(out[32, 32]) == (200, 0, 0)  # object centred
    assert tuple(out[2, 32]) == (255, 255, 255)  # padding above the wide object is white
    assert not (np.abs(out.astype(int) - 90).sum(-1) < 10).any()  # no grey background left


def test_empty_mask_keeps_whole_photo():
    image = Image.new("RGB", (30, 30), (10, 20, 30))
    out = object_on_white(image, Image.new("L", (30, 30), 0), 16)
    assert out.getpixel((8, 8)) == (10, 20, 30)


def test_missing_tracer_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="TRACER-B7 weights not found"):
        TracerSegmenter(tmp_path / "nope.pth")


def test_tracer_loads_local_weights_and_segments(tmp_path, dog_photos):
    from carvekit.ml.wrap.tracer_b7 import TracerUniversalB7

    weights = tmp_path / "tracer_b7.pth"
    torch.manual_seed(0)
    model = TracerUniversalB7(device="cpu", input_image_size=128, load_pretrained=False, model_path=weights)
    torch.save(model.state_dict(), weights)
    segmenter = TracerSegmenter(weights, input_size=128)
    for (name, a), b in zip(segmenter.model.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    photo = load_image(dog_photos[0])
    masks = segmenter([photo])
    assert masks[0].mode == "L" and masks[0].size == photo.size
    prepared = prepare_references([photo], 64, "tracer", segmenter)
    assert prepared[0].size == (64, 64)


def test_wrong_weights_file_is_rejected(tmp_path):
    bogus = tmp_path / "bogus.pth"
    torch.save({"something.else": torch.zeros(1)}, bogus)
    with pytest.raises(ValueError, match="does not hold TRACER-B7 weights"):
        TracerSegmenter(bogus, input_size=128)
