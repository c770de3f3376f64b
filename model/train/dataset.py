"""Training samples from a triplet folder, as a pure function of (seed, sample number).

Sample number k (counted over the whole run, all processes) picks a record through a per-epoch
permutation and seeds that sample's augmentation and its training noise. Nothing depends on hidden
iterator state, so `--resume` only needs the step count to continue with exactly the same data.

A record whose image cannot be read or whose mask is empty is skipped: the next record of the same
permutation takes its place (deterministically) and the sample reports the skipped id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from model.references import load_image
from model.train.augment import augmented_reference, square_resize, to_tensor
from model.train.config import AugmentationConfig
from model.triplets import TripletRecord, read_manifest

log = logging.getLogger(__name__)

# Independent random streams derived from the run's seed.
_ORDER_STREAM, _SAMPLE_STREAM = 0, 1


def derived_seed(*entropy: int) -> int:
    """A 63-bit seed mixed from integers (numpy's SeedSequence: nearby inputs give unrelated seeds)."""
    state = np.random.SeedSequence(list(entropy)).generate_state(2, dtype=np.uint64)
    return int((int(state[0]) << 32 ^ int(state[1])) & (2**63 - 1))


class TripletDataset(Dataset):
    """`dataset[k]` is training sample number k: target, augmented reference, captions, seed."""

    def __init__(
        self,
        directory: str | Path,
        resolution: int,
        augmentation: AugmentationConfig | None = None,
        reference_caption: str = "object",
        seed: int = 0,
    ):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"triplet folder {self.directory} not found")
        self.records: list[TripletRecord] = list(read_manifest(self.directory))
        if not self.records:
            raise ValueError(
                f"no triplets in {self.directory} (expected manifest*.jsonl, see model/triplets.py)"
            )
        self.resolution = resolution
        self.augmentation = augmentation or AugmentationConfig()
        self.reference_caption = reference_caption
        self.seed = seed
        self._epoch_order: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def order(self, epoch: int) -> torch.Tensor:
        """The permutation of records used in `epoch` (cached: consecutive samples share it)."""
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            generator = torch.Generator().manual_seed(derived_seed(self.seed, _ORDER_STREAM, epoch))
            self._epoch_order = (epoch, torch.randperm(len(self.records), generator=generator))
        return self._epoch_order[1]

    def image_and_mask(self, image: str, mask: str) -> tuple[Image.Image, Image.Image]:
        """An RGB image and its "L" mask of the folder, both square at the training resolution."""
        loaded = square_resize(load_image(self.directory / image), self.resolution)
        return loaded, square_resize(load_image(self.directory / mask).convert("L"), self.resolution)

    def load(self, record: TripletRecord) -> dict[str, Any]:
        """Target and augmented reference of one record (raises on unreadable files or an empty mask).

        The reference is cut out of the record's separate reference image when it names one.
        """
        target, mask = self.image_and_mask(record.target, record.mask)
        if record.reference is not None and record.reference_mask is not None:  # another view of it
            source, source_mask = self.image_and_mask(record.reference, record.reference_mask)
        else:  # Algorithm 1: cut out of the target itself
            source, source_mask = target, mask
        reference = augmented_reference(source, source_mask, self.resolution, self.augmentation)
        caption = record.reference_caption if self.reference_caption == "object" else record.caption
        return {
            "target": to_tensor(target) * 2.0 - 1.0,
            "reference": reference * 2.0 - 1.0,
            "caption": record.caption,
            "reference_caption": caption,
            "id": record.id,
        }

    def __getitem__(self, k: int) -> dict[str, Any]:
        count = len(self.records)
        order = self.order(k // count)
        seed = derived_seed(self.seed, _SAMPLE_STREAM, k)
        skipped: list[str] = []
        for offset in range(count):
            record = self.records[int(order[(k + offset) % count])]
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    sample = self.load(record)
            except (OSError, ValueError) as exc:  # PIL raises OSError subclasses, empty masks ValueError
                log.warning("skipping bad training sample %s: %s", record.id, exc)
                skipped.append(record.id)
                continue
            return {**sample, "seed": seed, "skipped": skipped}
        raise RuntimeError(f"no readable triplet in {self.directory}: all {count} samples are bad")


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "target": torch.stack([s["target"] for s in samples]),
        "reference": torch.stack([s["reference"] for s in samples]),
        "caption": [s["caption"] for s in samples],
        "reference_caption": [s["reference_caption"] for s in samples],
        "id": [s["id"] for s in samples],
        "seed": torch.tensor([s["seed"] for s in samples], dtype=torch.int64),
        "skipped": [i for s in samples for i in s["skipped"]],
    }


class SampleNumbers(Sampler[int]):
    """The sample numbers one process reads, from update `start_step` on.

    Update s consumes samples s*B ... s*B + B - 1 (B = batch size over all processes); micro-batch m of
    process p reads the slice starting at s*B + (m * processes + p) * micro_batch_size.
    """

    def __init__(
        self,
        start_step: int,
        max_steps: int,
        micro_batch_size: int,
        accumulation_steps: int,
        num_processes: int = 1,
        process_index: int = 0,
    ):
        self.start_step, self.max_steps = start_step, max_steps
        self.micro, self.accumulation = micro_batch_size, accumulation_steps
        self.processes, self.rank = num_processes, process_index

    @property
    def batch_size(self) -> int:
        return self.micro * self.accumulation * self.processes

    def __len__(self) -> int:
        return (self.max_steps - self.start_step) * self.micro * self.accumulation

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.max_steps):
            for micro_step in range(self.accumulation):
                first = step * self.batch_size + (micro_step * self.processes + self.rank) * self.micro
                yield from range(first, first + self.micro)
