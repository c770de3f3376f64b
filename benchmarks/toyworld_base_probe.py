"""Judge checkpoints of one long toy base-model run: shape/scene accuracy every N UNet steps.

The `base` stage returns only its final weights; this probe trains the same way (`train_unet`,
unchanged) on a finished toy world's data, VAE and toy CLIP, and samples the moving-average weights at
checkpoints with the quality bar of `base_check`, so one run shows how many steps the bar needs.

    python benchmarks/toyworld_base_probe.py --world runs/toyworld --steps 6000 --every 1000 \
        --out runs/probe-a [--channels 32,64,64] [--lr 1e-3] [--snr-gamma 5] [--train-text-encoder]
        [--text-time-embedding] [--object-weight 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from model.toyworld.base import text_encoder_from_clip, train_unet
from model.toyworld.classifier import load_classifier
from model.toyworld.data import scene_bank
from model.toyworld.driver import save_grid
from model.toyworld.quality import judge_unet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--world", type=Path, required=True, help="toy-world folder with world/, vae/, encoders/"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", default="32,64,64")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--snr-gamma", type=float, default=None)
    parser.add_argument(
        "--train-text-encoder", action="store_true", help="train the text encoder with the UNet"
    )
    parser.add_argument(
        "--text-time-embedding", action="store_true", help="add the pooled caption to the timestep embedding"
    )
    parser.add_argument(
        "--object-weight", type=float, default=0.0, help="extra loss weight on the object's latent pixels"
    )
    parser.add_argument("--sample-steps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    config = json.loads((args.world / "config.json").read_text())
    bank = scene_bank(args.world / "world" / "scenes-train.npz", config["scene_images"], config["size"], 0)
    vae = AutoencoderKL.from_pretrained(args.world / "vae")
    text_encoder = text_encoder_from_clip(args.world / "encoders" / "clip")
    classifier = load_classifier(args.world / "classifier.safetensors")
    started = time.perf_counter()
    rows = []

    def judge(step: int, ema, ema_text_encoder) -> None:
        if (step + 1) % args.every and step + 1 != args.steps:
            return
        train_seconds = time.perf_counter() - started - sum(r["judge_seconds"] for r in rows)
        t0 = time.perf_counter()
        result = judge_unet(vae, ema_text_encoder, ema, classifier, args.sample_steps, args.seed)
        row = {
            "step": step + 1,
            "train_seconds": round(train_seconds, 1),
            "shape_accuracy": result.shape_accuracy,
            "scene_accuracy": result.scene_accuracy,
            "shape_accuracy_by_shape": result.shape_accuracy_by_shape,
            "judge_seconds": round(time.perf_counter() - t0, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        save_grid([result.images[i : i + 8] for i in range(0, 64, 8)], args.out / f"samples-{step + 1}.png")
        (args.out / "probe.json").write_text(
            json.dumps(
                {"args": vars(args) | {"world": str(args.world), "out": str(args.out)}, "rows": rows},
                indent=2,
            )
        )

    train_unet(
        bank, vae, text_encoder, args.steps, args.seed, args.batch, progress=False,
        channels=tuple(int(c) for c in args.channels.split(",")), lr=args.lr, snr_gamma=args.snr_gamma,
        train_text_encoder=args.train_text_encoder, text_time_embedding=args.text_time_embedding,
        object_weight=args.object_weight,
        after_step=judge,
    )  # fmt: skip


if __name__ == "__main__":
    main()
