"""Judge checkpoints of one long toy base-model run: shape/scene accuracy every N UNet steps.

The `base` stage returns only its final weights; this probe trains the same way (`train_unet`,
unchanged) on a finished toy world's data, VAE and toy CLIP, and samples the moving-average weights at
checkpoints with the quality bar of `base_check`, so one run shows how many steps the bar needs.
Every training setting left out is the world's own (its `config.json`), so a flag is a variant of
exactly that world's base stage.

    python benchmarks/toyworld_base_probe.py --world runs/toyworld --steps 6000 --every 1000 \
        --out runs/probe-a [--channels 32,64,64] [--lr 1e-3] [--snr-gamma 5 | 0] [--train-text-encoder]
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
from model.toyworld.config import ToyWorldConfig
from model.toyworld.data import scene_bank
from model.toyworld.driver import save_grid
from model.toyworld.quality import judge_unet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--world", type=Path, required=True, help="toy-world folder with world/, vae/, encoders/"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=None, help="default: the world's unet_steps")
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--channels", default=None, help="e.g. 32,64,64")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--snr-gamma", type=float, default=None, help="min-SNR gamma; 0: plain epsilon loss")
    parser.add_argument(
        "--train-text-encoder",
        action=argparse.BooleanOptionalAction,
        help="train the text encoder with the UNet",
    )
    parser.add_argument(
        "--text-time-embedding",
        action=argparse.BooleanOptionalAction,
        help="add the pooled caption to the timestep embedding",
    )
    parser.add_argument(
        "--object-weight", type=float, default=None, help="extra loss weight on the object's latent pixels"
    )
    parser.add_argument("--sample-steps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    world = ToyWorldConfig.model_validate_json((args.world / "config.json").read_text())
    settings = _settings(args, world)
    bank = scene_bank(args.world / "world" / "scenes-train.npz", world.scene_images, world.size, 0)
    vae = AutoencoderKL.from_pretrained(args.world / "vae")
    text_encoder = text_encoder_from_clip(args.world / "encoders" / "clip")
    classifier = load_classifier(args.world / "classifier.safetensors")
    started = time.perf_counter()
    rows = []

    def judge(step: int, ema, ema_text_encoder) -> None:
        if (step + 1) % args.every and step + 1 != settings["steps"]:
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
                {"world": str(args.world), "settings": settings, "seed": args.seed, "rows": rows},
                indent=2,
            )
        )

    train_unet(bank, vae, text_encoder, seed=args.seed, progress=False, after_step=judge, **settings)


def _settings(args: argparse.Namespace, world: ToyWorldConfig) -> dict:
    """The world's base-stage settings, with the flags given on the command line in their place."""
    flags = {
        "unet_steps": args.steps,
        "unet_batch": args.batch,
        "unet_channels": tuple(int(c) for c in args.channels.split(",")) if args.channels else None,
        "unet_lr": args.lr,
        "unet_snr_gamma": args.snr_gamma,
        "unet_trains_text_encoder": args.train_text_encoder,
        "unet_text_time_embedding": args.text_time_embedding,
        "unet_object_weight": args.object_weight,
    }
    settings = world.model_copy(update={k: v for k, v in flags.items() if v is not None}).base_unet_training()
    return settings | {"snr_gamma": settings["snr_gamma"] or None}  # 0: the plain epsilon loss


if __name__ == "__main__":
    main()
