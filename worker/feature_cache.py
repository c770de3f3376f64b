"""Fast-mode reference features of prepared subjects, kept in the worker between jobs.

With `reference_schedule="once"` the Reference UNet runs once per job on references noised with fixed noise
(`BootPIGPipeline.once_reference_features`), so its features are the same for every job of a subject with
the same reference prompt, size and timestep, whatever the seed. Keeping them skips decoding, preparing,
VAE-encoding and the Reference UNet on the next such job.

A wrong hit would silently give wrong images, so the key holds everything the features are computed from
(see `FeatureKey`), including a hash of the reference files themselves: a subject whose references differ
never hits, and an entry of a deleted subject can only serve jobs that carry the very same files. What
does not enter the features (seed, steps, guidance, pooling, output size beyond the reference side,
negative prompt) is left out, so those jobs share an entry.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from model.config import ONCE_PER_JOB, GenerationConfig

if TYPE_CHECKING:  # torch stays unimported until a pipeline is loaded
    from model.attention import ReferenceFeatures
    from model.loading import ModelInfo


@dataclass(frozen=True)
class FeatureKey:
    """What the once-per-job features depend on; two jobs with equal keys get identical features."""

    subject_id: str
    references: str  # sha256 of the job's reference files in order (their count and order matter)
    segment: str  # how the files are prepared (`none` for subject jobs; kept in case that changes)
    reference_prompt: str  # the caption the Reference UNet sees (the prompt when none is given)
    reference_size: int  # the side the references are resized to (depends on the output size when unset)
    reference_timestep: int
    weights: str  # the served weights, dtype and device (`served_weights`)


def served_weights(info: ModelInfo) -> str:
    """Identity of the weights that compute the features; the cache lives in one process with one
    pipeline, so this only guards against a future reload, but it costs nothing."""
    return f"{info.model}|{info.checkpoint or ''}|{info.dtype}|{info.device}"


def feature_key(
    subject_id: str | None, config: GenerationConfig, references: list[bytes], weights: str
) -> FeatureKey | None:
    """The job's key, or None when its features must not be shared: not a subject, or not fast mode."""
    if subject_id is None or config.reference_schedule != ONCE_PER_JOB:
        return None
    digest = hashlib.sha256()
    for blob in references:
        digest.update(len(blob).to_bytes(8, "big"))  # length-prefixed: boundaries between files count
        digest.update(blob)
    return FeatureKey(
        subject_id=subject_id,
        references=digest.hexdigest(),
        segment=config.segment.value,
        reference_prompt=config.resolved_reference_prompt(),
        reference_size=config.resolved_reference_size(),
        reference_timestep=config.reference_timestep,
        weights=weights,
    )


def features_nbytes(features: ReferenceFeatures) -> int:
    """Bytes the features keep alive: their storages, each counted once (a view may hold a larger one)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in features.values()}
    return sum(storages.values())


class FeatureCache:
    """Least-recently-used features bounded by their bytes (on the pipeline's device); 0 bytes disables.

    Used by one job at a time (RQ's `SimpleWorker` runs jobs in the main thread), so no lock. Cached
    tensors are shared with the jobs that use them; the pipeline only reads them.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[FeatureKey, tuple[ReferenceFeatures, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: FeatureKey) -> bool:
        return key in self._entries

    def get(self, key: FeatureKey) -> ReferenceFeatures | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: FeatureKey, features: ReferenceFeatures) -> bool:
        """Keep `features`, evicting the least recently used; False when they alone exceed the bound."""
        size = features_nbytes(features)
        if size > self.max_bytes:
            return False
        self.discard(key)
        while self.nbytes + size > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.nbytes -= evicted
        self._entries[key] = (features, size)
        self.nbytes += size
        return True

    def discard(self, key: FeatureKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.nbytes -= entry[1]
