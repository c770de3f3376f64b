"""The product chain on tiny models: `synth` makes triplets, `train` makes weights, `generate` serves them.

Each part has its own tests; this one checks that they meet: the triplet folder synthesis writes is what
training reads, and the checkpoint training exports is what generation (and so the worker) loads.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from bootpig.cli import main
from model.pipeline import BootPIGPipeline
from model.triplets import read_manifest

KEEP_EVERY_MASK = ["--mask-threshold", "0", "--border-margin", "0", "--min-area", "0", "--max-area", "1"]


def test_synthesized_data_trains_weights_that_generation_serves(tiny_model_dir, tiny_clipseg_dir, tmp_path):
    data, run = tmp_path / "triplets", tmp_path / "run"
    synth = [
        "synth",
        "--model",
        str(tiny_model_dir),
        "--segmenter",
        str(tiny_clipseg_dir),
        "--captions",
        "offline",
    ]
    synth += ["--count", "4", "--resolution", "64", "--steps", "2", "--device", "cpu", "--out", str(data)]
    assert main([*synth, "--no-progress", *KEEP_EVERY_MASK]) == 0
    assert len(list(read_manifest(data))) == 4

    train = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--output", str(run)]
    train += ["--max-steps", "2", "--batch-size", "2", "--micro-batch-size", "2", "--resolution", "64"]
    train += ["--lr-reference", "1e-3", "--lr-rsa", "1e-3", "--num-workers", "0", "--local-files-only"]
    trained = subprocess.run(
        [sys.executable, "-m", "bootpig.cli", *train],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    final = run / "final"

    served = BootPIGPipeline.from_pretrained(tiny_model_dir, final, local_files_only=True)
    untrained = BootPIGPipeline.from_pretrained(tiny_model_dir, local_files_only=True)
    assert served.has_trained_weights
    changed = [
        name
        for (name, a), b in zip(
            served.ref_unet.state_dict().items(), untrained.ref_unet.state_dict().values(), strict=True
        )
        if not torch.equal(a, b)
    ]
    assert changed, "training left the Reference UNet unchanged"

    outputs = {}
    for label, checkpoint in [("trained", final), ("untrained", None)]:
        out = tmp_path / f"{label}.png"
        argv = ["generate", "--model", str(tiny_model_dir), "--ref", str(data / "targets" / "00000000.png")]
        argv += ["--prompt", "a photo", "--seed", "3", "--steps", "2", "--segment", "none", "--out", str(out)]
        assert main(argv + (["--bootpig", str(final)] if checkpoint else [])) == 0
        outputs[label] = np.asarray(Image.open(out), dtype=np.int16)
    assert outputs["trained"].shape == (64, 64, 3)
    assert np.abs(outputs["trained"] - outputs["untrained"]).max() > 0
