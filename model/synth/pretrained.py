"""What the synthesis models share: a hub id or local folder, loaded once onto one device in one dtype."""

from __future__ import annotations

from pathlib import Path

import torch


class PretrainedModel:
    """Base of the text-to-image renderer and the segmenter; a subclass loads its parts in `load`."""

    def __init__(
        self,
        model: str | Path,
        device: str | torch.device = "cpu",
        torch_dtype: torch.dtype = torch.float32,
        local_files_only: bool = False,
    ):
        self.name = str(model)  # recorded with every triplet
        self.load(self.name, device, torch_dtype, local_files_only)

    def load(self, model: str, device: str | torch.device, torch_dtype: torch.dtype, local_files_only: bool):
        raise NotImplementedError
