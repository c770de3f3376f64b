"""The ceiling a toy VAE puts on every latent model: train one VAE variant, score the bound rows.

The `bounds` stage's row "renderer: the subject, through the VAE" shows the perfect personalizer's
images after the base model's VAE, i.e. the most fidelity any model of that VAE can reach. This probe
trains a VAE with other settings (`train_vae`, unchanged) on a finished toy world's scenes and scores
the same rows against that world's held-out subjects and toy encoders, so VAE settings are chosen by
the ceiling they leave, before hours of base-model training are spent on their latents.

    python benchmarks/toyworld_vae_probe.py --world runs/toyworld --out runs/vae-2000 --steps 2000 \
        [--channels 16,32,32] [--crop 32] [--lr 2e-3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from model.toyworld.base import VAE_CHANNELS, VAE_CROP, VAE_LR, train_vae
from model.toyworld.config import ToyWorldConfig
from model.toyworld.driver import ToyWorld


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--world", type=Path, required=True, help="toy-world folder with world/, encoders/, heldout/"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=ToyWorldConfig.model_fields["vae_steps"].default)
    parser.add_argument("--channels", default=",".join(map(str, VAE_CHANNELS)))
    parser.add_argument("--crop", type=int, default=VAE_CROP, help="side of the training crops (px)")
    parser.add_argument("--lr", type=float, default=VAE_LR)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = ToyWorldConfig.model_validate_json((args.world / "config.json").read_text())
    world = ToyWorld(args.world, config, progress=False)
    channels = tuple(int(c) for c in args.channels.split(","))
    started = time.perf_counter()
    vae = train_vae(world.scenes(), args.steps, config.seed, channels=channels, crop=args.crop, lr=args.lr)
    vae.save_pretrained(args.out / "vae")
    train_seconds = time.perf_counter() - started
    rows = world.bounds(lambda row: args.out / "rows" / world.row_folder(row), args.out / "vae")
    result = {
        "args": vars(args) | {"world": str(args.world), "out": str(args.out)},
        "train_seconds": round(train_seconds, 1),
        "rows": {row: {m: scores[m] for m in ("clip_i", "dino")} for row, scores in rows.items()},
    }
    (args.out / "probe.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
