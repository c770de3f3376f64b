"""What a client sees of a subject, and the list of them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

SUBJECT_NAME_MAX_CHARS = 200


class SubjectView(BaseModel):
    id: str
    name: str | None = Field(None, description="The label given at creation.")
    status: str = Field(description="preparing | ready | failed")
    error: str | None = Field(None, description="Why the preparation failed.")
    segment: str = Field(description="How the photos were cut out (tracer or none).")
    references: list[str] = Field(
        default_factory=list,
        description="URLs of the prepared references (PNG) once ready: check the cut-out.",
    )
    reference_size: int | None = Field(
        None, description="Side of the prepared (square) references in pixels."
    )
    created_at: datetime
    last_used_at: datetime | None = Field(None, description="When a job last used the subject.")
    expires_in: int = Field(description="Seconds until the subject expires unless a job uses it again.")
    links: dict[str, str]


class SubjectList(BaseModel):
    subjects: list[SubjectView] = Field(description="The caller's subjects, newest first.")


def _time(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc)


def subject_view(record: dict[str, Any]) -> SubjectView:
    subject_id, ready = record["id"], record["status"] == "ready"
    references = [f"/subjects/{subject_id}/references/{n}" for n in range(record["num_references"])]
    return SubjectView(
        id=subject_id,
        name=record.get("name") or None,
        status=record["status"],
        error=record.get("error") or None,
        segment=record["segment"],
        references=references if ready else [],
        reference_size=record["reference_size"] or None,
        created_at=_time(record["created_at"]),
        last_used_at=_time(record["last_used_at"]),
        expires_in=record["expires_in"],
        links={"self": f"/subjects/{subject_id}", "delete": f"/subjects/{subject_id}"},
    )
