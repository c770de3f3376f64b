"""The job record: what one Redis hash `job:<id>` holds, as a typed model every reader shares.

Redis hands back bytes for every field; parsing them here, once, means the API, the workers and the
reaper read `record.attempt` as an int and `record.started_at` as a float or None, never a raw string.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class JobStatus(str, Enum):
    queued = "queued"
    started = "started"
    finished = "finished"
    failed = "failed"
    canceled = "canceled"


FINAL_STATES = (JobStatus.finished, JobStatus.failed, JobStatus.canceled)
# Where a fast-mode job's reference features came from (`worker.feature_cache`).
ReferenceFeaturesSource = Literal["cached", "computed"]


class JobRecord(BaseModel):
    """One job's state. Changed only by `JobStore` (its Lua scripts), read by everyone."""

    model_config = ConfigDict(extra="ignore")

    id: str
    owner: str
    status: JobStatus
    params: dict[str, Any] = Field(default_factory=dict, description="The request's GenerationConfig fields.")
    num_inputs: int = 0
    num_images: int = 0
    attempt: int = Field(1, description="1, or higher once a dead worker's job was retried.")
    runs: int = Field(0, description="Times a worker claimed the job (a released job runs again).")
    step: int = 0
    total: int = 0
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    cancel: bool = Field(False, description="The client asked to cancel while the job ran.")
    error: str | None = None
    rq_id: str | None = Field(None, description="The job's current entry in RQ's queue.")
    worker: str | None = None
    retry_reason: str | None = None
    subject_id: str | None = Field(None, description="The prepared subject whose references the job uses.")
    webhook: str | None = Field(None, description="URL told of the job's end (see jobs.webhooks).")
    reference_features: ReferenceFeaturesSource | None = Field(
        None, description="Fast mode only: 'cached' (a subject's features reused) or 'computed'."
    )

    @model_validator(mode="before")
    @classmethod
    def _blank_means_unset(cls, data: Any) -> Any:
        """The scripts clear a field by writing '' (e.g. `worker` on a retry): read that as unset."""
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value not in ("", b"")}
        return data

    @field_validator("params", mode="before")
    @classmethod
    def _params_from_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    @classmethod
    def from_hash(cls, raw: dict[bytes | str, bytes | str]) -> JobRecord:
        """Parse the hash as `HGETALL` returns it (bytes keys and values)."""
        return cls.model_validate({as_text(key): as_text(value) for key, value in raw.items()})

    def to_hash(self) -> dict[str, str | int | float]:
        """The fields to `HSET` for a new record: unset ones left out, `cancel` only when set."""
        fields = self.model_dump(mode="json", exclude_none=True, exclude={"cancel"})
        fields["params"] = json.dumps(self.params)
        if self.cancel:
            fields["cancel"] = "1"
        return fields

    @property
    def ended(self) -> bool:
        return self.status in FINAL_STATES


def as_text(value: bytes | str) -> str:
    """Redis answers in bytes (the client runs in bytes mode because RQ needs it)."""
    return value.decode() if isinstance(value, bytes) else value
