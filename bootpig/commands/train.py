"""`bootpig train`: train BootPIG (the paper's Algorithm 1) on a triplet folder.

Settings come from `model.train.TrainConfig` (defaults = the paper's), optionally a YAML/JSON config
file, then these flags. Multi-GPU: `accelerate launch -m bootpig.cli train ...`.
"""

from __future__ import annotations

import argparse

from model.config import field_default
from model.train.config import TrainConfig

# flag -> TrainConfig field, for the overrides that are plain values
OVERRIDES = {
    "max_steps": int,
    "batch_size": int,
    "micro_batch_size": int,
    "resolution": int,
    "lr_reference": float,
    "lr_rsa": float,
    "seed": int,
    "checkpoint_every": int,
    "checkpoints_kept": int,
    "num_workers": int,
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train BootPIG weights on a triplet folder",
        description="Train the Reference UNet and the RSA layers on triplets written by `bootpig synth`. "
        "Every checkpoint is a folder the service can load (--bootpig / BOOTPIG_CHECKPOINT).",
    )
    p.add_argument("--model", help="base model: hub id or diffusers folder of SD 2.1-base")
    p.add_argument("--data", help="triplet folder (bootpig synth --out)")
    p.add_argument("--output", help="folder for checkpoints, final/ and logs")
    p.add_argument("--config", help="YAML or JSON file of TrainConfig settings (flags override it)")
    for name, kind in OVERRIDES.items():
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            default=None,
            help=f"default: {field_default(TrainConfig, name)}",
        )
    p.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        help="continue from the newest checkpoint in --output, or from the checkpoint folder given",
    )
    p.add_argument("--init-bootpig", default=None, help="start from these BootPIG weights")
    p.add_argument("--mixed-precision", choices=["auto", "no", "bf16", "fp16"], default=None)
    p.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="default: on when training on CUDA",
    )
    p.add_argument("--tensorboard", action="store_true", default=None, help="log to <output>/logs")
    p.add_argument("--local-files-only", action="store_true", default=None, help="never contact the hub")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    from model.train.config import load_train_config

    names = ["model", "data", "output", "resume", "init_bootpig", "mixed_precision"]
    names += ["gradient_checkpointing", "tensorboard", "local_files_only", *OVERRIDES]
    return load_train_config(args.config, **{name: getattr(args, name) for name in names})


def run(args: argparse.Namespace) -> int:
    from model.train.loop import train

    config = config_from_args(args)
    result = train(config)
    if not result.is_main_process:
        return 0
    print(f"trained {config.max_steps} steps; weights for the service: {result.final}")
    if result.skipped_samples:
        print(f"skipped {len(result.skipped_samples)} bad samples (see the log)")
    return 0
