"""FastAPI dependencies for what every route shares: the settings, the job store, this replica's counters.

`create_app` puts them on `app.state` once; routes ask for them by type (`store: StoreDep`), so a test
can hand `create_app` its own store and every route uses it.
"""

from __future__ import annotations

from typing import Annotated

import redis.asyncio
from fastapi import Depends, Request
from prometheus_client import CollectorRegistry, Counter

from app.uploads import UploadSlots
from bootpig.settings import Settings
from jobs.store import JobStore
from jobs.subjects import SubjectStore
from jobs.views import JobViews


def app_settings(request: Request) -> Settings:
    return request.app.state.settings


def job_store(request: Request) -> JobStore:
    return request.app.state.store


def metrics_registry(request: Request) -> CollectorRegistry:
    return request.app.state.registry


def submission_counter(request: Request) -> Counter:
    """POST /generate outcomes of this API process (accepted, replayed, rejected, queue_full)."""
    return request.app.state.submissions


def job_views(request: Request) -> JobViews:
    return request.app.state.views


def upload_slots(request: Request) -> UploadSlots:
    return request.app.state.upload_slots


SettingsDep = Annotated[Settings, Depends(app_settings)]
StoreDep = Annotated[JobStore, Depends(job_store)]
RegistryDep = Annotated[CollectorRegistry, Depends(metrics_registry)]
SubmissionsDep = Annotated[Counter, Depends(submission_counter)]


def subject_store(request: Request) -> SubjectStore:
    return request.app.state.subjects


def async_redis(request: Request) -> redis.asyncio.Redis:
    """An asyncio client, for waits that must not hold a worker thread (live event streams)."""
    return request.app.state.async_redis


SubjectsDep = Annotated[SubjectStore, Depends(subject_store)]
AsyncRedisDep = Annotated[redis.asyncio.Redis, Depends(async_redis)]
ViewsDep = Annotated[JobViews, Depends(job_views)]
UploadSlotsDep = Annotated[UploadSlots, Depends(upload_slots)]
