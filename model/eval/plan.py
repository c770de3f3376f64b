"""The plan of an evaluation: which (subject, prompt) pairs, in which shard, with which seeds, where.

Shared by `run` (which generates and scores the plan) and `report` (which lays it out), so neither
imports the other's internals.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from model.config import MAX_REFERENCES, RANDOM_SEED_RANGE
from model.eval.config import BOOTPIG, DEFAULT_CLIP_MODEL, DEFAULT_DINO_MODEL, EvalConfig
from model.eval.dataset import Subject, subject_prompts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkItem:
    """One (subject, prompt) pair: the unit of resuming and sharding."""

    subject: Subject
    prompt_index: int
    prompt: str


@dataclass
class EvalRequest:
    """One `bootpig eval` call: what to evaluate (config) and how to run it."""

    config: EvalConfig
    dataset: Path
    out: Path
    subjects: list[str] | None = None
    prompts: int | None = None
    baseline: str | None = None
    shard: tuple[int, int] = (0, 1)
    clip_model: str = DEFAULT_CLIP_MODEL
    dino_model: str = DEFAULT_DINO_MODEL
    device: str = "auto"
    dtype: str = "auto"
    demo_model_dir: Path = Path(".bootpig/demo-model")
    local_files_only: bool = False
    tracer_weights: Path | None = None
    progress: bool = True
    grids: bool = True

    @property
    def methods(self) -> list[str]:
        return [BOOTPIG] + ([self.baseline] if self.baseline else [])


def build_plan(subjects: list[Subject], prompt_file, prompts: int | None) -> list[WorkItem]:
    return [
        WorkItem(subject, i, prompt)
        for subject in subjects
        for i, prompt in enumerate(subject_prompts(subject, prompt_file, prompts))
    ]


def shard_of(plan: list[WorkItem], shard: tuple[int, int]) -> list[WorkItem]:
    """Round-robin over (subject, prompt) pairs, so every shard gets a similar mix of subjects."""
    index, count = shard
    return [item for k, item in enumerate(plan) if k % count == index]


def derive_seed(base_seed: int, subject: str, prompt_index: int, batch: int) -> int:
    """A seed fixed by (subject, prompt, batch): images do not depend on sharding or resume order."""
    digest = hashlib.sha256(f"{base_seed}/{subject}/{prompt_index}/{batch}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % RANDOM_SEED_RANGE


def image_path(out: Path, method: str, subject: str, prompt_index: int, image_index: int) -> Path:
    return out / "generations" / method / subject / f"p{prompt_index:02d}_{image_index}.png"


def item_paths(out: Path, method: str, item: WorkItem, images_per_prompt: int) -> list[Path]:
    return [
        image_path(out, method, item.subject.name, item.prompt_index, i) for i in range(images_per_prompt)
    ]


def is_done(out: Path, method: str, item: WorkItem, images_per_prompt: int) -> bool:
    return all(p.is_file() for p in item_paths(out, method, item, images_per_prompt))


def reference_photos(subject: Subject, max_refs: int | None) -> list[Path]:
    """The photos shown to the model: all of them (the first 8 at most), or the first `max_refs`."""
    limit = max_refs or MAX_REFERENCES
    if max_refs is None and len(subject.images) > MAX_REFERENCES:
        log.warning("%s has %d photos; using the first %d", subject.name, len(subject.images), limit)
    return list(subject.images[:limit])
