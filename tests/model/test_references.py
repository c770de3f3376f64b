"""Reference preparation: EXIF orientation, object on white, TRACER loading without downloads."""

from __future__ import annotations

import io
import os
import subprocess
import sys

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


MEMORY_PROBE = """
import resource, sys
import torch
from PIL import Image
from model.references import TracerSegmenter, object_on_white

case, budget = sys.argv[1], int(sys.argv[2])
if case == "panorama":  # 65500 x 610, the shape of a 624 KiB JPEG that once cost 17 GB
    image, mask = Image.new("RGB", (65500, 610), (90, 90, 90)), None
    run = lambda: object_on_white(image, mask, 512)
else:  # a 40 MP photo through TRACER (random weights: only the memory matters)
    weights = sys.argv[3]
    segmenter = TracerSegmenter(weights, input_size=128)
    image = Image.new("RGB", (8000, 5000), (90, 90, 90))
    run = lambda: object_on_white(image, segmenter([image])[0], 512)
used = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (used + budget, used + budget))
print(run().size)
"""


def run_under_memory_budget(case: str, budget_mib: int, *args: str) -> subprocess.CompletedProcess:
    """Run one preparation in a fresh process whose address space may grow by only `budget_mib`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    command = [sys.executable, "-c", MEMORY_PROBE, case, str(budget_mib * 2**20), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_panorama_reference_is_prepared_in_memory_of_the_output():
    done = run_under_memory_budget("panorama", 400)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(512, 512)"


def test_tracer_input_is_shrunk_before_carvekit_makes_float_tensors(tmp_path):
    from carvekit.ml.wrap.tracer_b7 import TracerUniversalB7

    weights = tmp_path / "tracer_b7.pth"
    model = TracerUniversalB7(device="cpu", input_image_size=128, load_pretrained=False, model_path=weights)
    torch.save(model.state_dict(), weights)
    done = run_under_memory_budget("tracer", 600, str(weights))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(512, 512)"


def test_mask_of_another_size_is_scaled_to_the_photo():
    image = Image.new("RGB", (400, 200), (90, 90, 90))
    image.paste((0, 0, 200), (100, 50, 300, 150))
    mask = Image.new("L", (40, 20), 0)
    mask.paste(255, (10, 5, 30, 15))  # the same box at a tenth of the size
    out = np.asarray(object_on_white(image, mask, 64))
    assert tuple(out[32, 32]) == (0, 0, 200)
    assert tuple(out[4, 32]) == (255, 255, 255)
