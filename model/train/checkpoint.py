"""Checkpoints: accelerate training state plus weights in the layout the service loads.

`<output>/checkpoint-<step>/` holds `ref_unet/` and `base_unet/` (diffusers `save_pretrained`,
safetensors), `bootpig_config.json` (the `MethodConfig`) and `train_config.json`, which is exactly what
`BootPIGPipeline.from_pretrained(model, bootpig=<folder>)` and `bootpig serve` read. Accelerate's own
files (optimizer, LR scheduler, RNG states, progress) sit next to them; the save/load hooks below keep
the UNet weights out of accelerate's `model.safetensors`, so every checkpoint stores them once.
`<output>/final/` holds the weights of the last step without training state.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import Accelerator
from diffusers import UNet2DConditionModel

from model.files import write_text_atomically
from model.pipeline import BASE_UNET, REF_UNET
from model.train.config import TrainConfig
from model.unets import BootPIGUNets
from model.weights import save_bootpig_weights

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
FINAL_DIR = "final"
TRAIN_CONFIG_NAME = "train_config.json"
COMPLETE_MARKER = "train_state.json"  # written last: a checkpoint without it is incomplete


@dataclass
class TrainingProgress:
    """Where the run stands; saved with accelerate's state (`register_for_checkpointing`)."""

    step: int = 0
    skipped_samples: list[str] = field(default_factory=list)

    def state_dict(self) -> dict:
        return {"step": self.step, "skipped_samples": list(self.skipped_samples)}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.skipped_samples = list(state["skipped_samples"])


def export_weights(unets: BootPIGUNets, directory: str | Path, config: TrainConfig) -> Path:
    """Write both UNets, the method settings and the training settings to `directory`; the method
    settings carry the fixed reference timestep trained with, which inference then defaults to."""
    method = config.method.model_copy(update={"reference_timestep": config.reference_timestep})
    directory = save_bootpig_weights(directory, unets.ref_unet, unets.base_unet, method)
    (directory / TRAIN_CONFIG_NAME).write_text(config.model_dump_json(indent=2))
    return directory


def load_exported_weights(unets: BootPIGUNets, directory: str | Path) -> None:
    """Copy exported UNet weights into `unets` in place (exact: fp32 safetensors round-trip)."""
    for name, unet in ((REF_UNET, unets.ref_unet), (BASE_UNET, unets.base_unet)):
        loaded = UNet2DConditionModel.from_pretrained(str(directory), subfolder=name)
        unet.load_state_dict(loaded.state_dict())


def register_export_hooks(accelerator: Accelerator, config: TrainConfig) -> None:
    """Make `save_state`/`load_state` store the UNets as service-loadable exports."""

    def save_hook(models, weights, output_dir) -> None:
        for model in models:
            if accelerator.is_main_process:
                export_weights(accelerator.unwrap_model(model), output_dir, config)
            weights.pop()

    def load_hook(models, input_dir) -> None:
        while models:
            load_exported_weights(accelerator.unwrap_model(models.pop()), input_dir)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def save_checkpoint(accelerator: Accelerator, config: TrainConfig, progress: TrainingProgress) -> Path:
    """Save state + export for the current step, then delete checkpoints beyond the kept number."""
    directory = Path(config.output) / f"{CHECKPOINT_PREFIX}{progress.step}"
    accelerator.save_state(str(directory))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_text_atomically(directory / COMPLETE_MARKER, json.dumps(progress.state_dict(), indent=2))
        prune_checkpoints(config.output, config.checkpoints_kept)
    accelerator.wait_for_everyone()
    return directory


def list_checkpoints(output: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in `output`, oldest first."""
    found = []
    for path in Path(output).glob(f"{CHECKPOINT_PREFIX}*"):
        match = re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", path.name)
        if match and (path / COMPLETE_MARKER).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def prune_checkpoints(output: str | Path, keep: int) -> None:
    checkpoints = list_checkpoints(output)
    for _, path in checkpoints[: max(0, len(checkpoints) - keep)]:
        log.info("deleting old checkpoint %s", path)
        shutil.rmtree(path)


def resume_directory(config: TrainConfig) -> Path | None:
    """The checkpoint to resume from: `resume` = 'latest' (None if there is none yet) or a path."""
    if config.resume is None:
        if list_checkpoints(config.output):
            raise ValueError(
                f"{config.output} already holds checkpoints: pass --resume to continue, or another --output"
            )
        return None
    if config.resume == "latest":
        checkpoints = list_checkpoints(config.output)
        if not checkpoints:
            log.info("no checkpoint in %s yet: starting from step 0", config.output)
            return None
        return checkpoints[-1][1]
    path = Path(config.resume)
    if not (path / COMPLETE_MARKER).is_file():
        raise FileNotFoundError(f"{path} is not a complete training checkpoint (no {COMPLETE_MARKER})")
    return path
