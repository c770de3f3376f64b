"""The BootPIG weights folder: `ref_unet/`, `base_unet/` (diffusers, safetensors), `bootpig_config.json`.

It is what `BootPIGPipeline.from_pretrained(model, bootpig=<folder>)` reads. Training checkpoints, the
final export and the tiny demo model are all written by `save_bootpig_weights`, so the layout has one
writer.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import UNet2DConditionModel

from model.config import MethodConfig
from model.pipeline import BASE_UNET, METHOD_CONFIG_NAME, REF_UNET


def save_bootpig_weights(
    directory: str | Path,
    ref_unet: UNet2DConditionModel,
    base_unet: UNet2DConditionModel,
    method: MethodConfig,
) -> Path:
    """Write both UNets and the method settings they are meant to run with into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ref_unet.save_pretrained(directory / REF_UNET, safe_serialization=True)
    base_unet.save_pretrained(directory / BASE_UNET, safe_serialization=True)
    (directory / METHOD_CONFIG_NAME).write_text(method.model_dump_json(indent=2))
    return directory
