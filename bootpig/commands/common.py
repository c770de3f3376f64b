"""Flags shared by several subcommands, so they read the same everywhere."""

from __future__ import annotations

import argparse

from bootpig.settings import get_settings


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """`--model M [--bootpig C]`, defaulting to BOOTPIG_MODEL / BOOTPIG_CHECKPOINT."""
    settings = get_settings()
    parser.add_argument(
        "--model",
        default=settings.model,
        help="hub id or diffusers folder of the base model (default: BOOTPIG_MODEL; unset = demo model)",
    )
    parser.add_argument(
        "--bootpig",
        default=settings.checkpoint,
        help="BootPIG checkpoint folder with ref_unet/ and base_unet/ (default: BOOTPIG_CHECKPOINT)",
    )
    parser.add_argument("--device", default=settings.device, help="auto, cuda, cuda:N or cpu")
    parser.add_argument("--dtype", default=settings.dtype, help="auto, fp16, bf16 or fp32")


def add_listen_flags(parser: argparse.ArgumentParser, what: str = "listen") -> None:
    """`--host H --port P` of the API; None when absent, so the caller falls back to the settings."""
    parser.add_argument("--host", default=None, help=f"{what} address (default: BOOTPIG_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help=f"{what} port (default: BOOTPIG_PORT, 8000)")
