"""Who is calling, and which jobs are theirs.

API keys are off by default (local use); with keys set, each key is its own client and sees only the
jobs it created: a job remembers a hash of its creator's key (`owner_of`), and another client's job is
answered exactly like a job that does not exist.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Annotated

from fastapi import Depends, Request

from app.deps import SettingsDep, StoreDep
from app.errors import APIError
from jobs.record import JobRecord
from jobs.store import JobStore
from jobs.subjects import SubjectStore
from jobs.views import JobViews

JOB_ID = re.compile(r"[0-9a-f]{32}")  # what `new_job_id` makes; anything else is not looked up at all


def owner_of(api_key: str | None) -> str:
    """Jobs remember a hash of the key that created them, never the key itself."""
    if api_key is None:
        return "public"
    return hashlib.sha256(api_key.encode()).hexdigest()[:24]


def presented_key(request: Request) -> str | None:
    """`X-API-Key: k` or `Authorization: Bearer k`."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def caller(request: Request, settings: SettingsDep) -> str:
    """The caller's owner id (a hash of its key), or 401 when keys are required and none valid is given.

    `async` though it never waits: it runs on the event loop instead of a thread-pool hop (app.deps)."""
    if not settings.api_keys:
        return owner_of(None)
    key = presented_key(request)
    # Compare against every key in constant time so the timing reveals nothing.
    valid = key is not None and any(
        [secrets.compare_digest(key.encode(), accepted.encode()) for accepted in settings.api_keys]
    )
    if not valid:
        raise APIError(401, "unauthorized", "a valid API key is required (X-API-Key header)", "X-API-Key")
    return owner_of(key)


CallerDep = Annotated[str, Depends(caller)]


def load_owned_job(store: JobStore, job_id: str, owner: str) -> JobRecord:
    """The caller's job, or 404 (also for another client's job: it is indistinguishable from none)."""
    # Checked before Redis is asked: `<id>:image:0` must not reach another key of the job.
    record = store.get(job_id) if JOB_ID.fullmatch(job_id) else None
    if record is None or record.owner != owner:
        raise APIError(404, "not_found", "no such job", "id")
    return record


def load_owned_view(views: JobViews, job_id: str, owner: str) -> tuple[JobRecord, int | None]:
    """`load_owned_job` plus the queue position, in one Redis round trip (for polling)."""
    record, position = views.get(job_id) if JOB_ID.fullmatch(job_id) else (None, None)
    if record is None or record.owner != owner:
        raise APIError(404, "not_found", "no such job", "id")
    return record, position


def owned_job(job_id: str, store: StoreDep, owner: CallerDep) -> JobRecord:
    """Dependency form of `load_owned_job` for routes under `/jobs/{job_id}`."""
    return load_owned_job(store, job_id, owner)


OwnedJobDep = Annotated[JobRecord, Depends(owned_job)]


def load_owned_subject(subjects: SubjectStore, subject_id: str, owner: str, field: str = "id") -> dict:
    """The caller's subject, or 404 (another client's subject is indistinguishable from none)."""
    record = subjects.get(subject_id)
    if record is None or record["owner"] != owner:
        raise APIError(404, "not_found", "no such subject", field)
    return record
