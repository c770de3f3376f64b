"""FastAPI dependencies for what every route shares: the settings, the job store, this replica's counters.

`create_app` puts them on `app.state` once; routes ask for them by type (`store: StoreDep`), so a test
can hand `create_app` its own store and every route uses it. They are `async def` because they only read
`app.state`: FastAPI runs a plain `def` dependency in its thread pool, and each such hop cost ~0.1 ms of
CPU and, on a busy machine, a wait for the thread to be scheduled (a submission had seven).
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


async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def job_store(request: Request) -> JobStore:
    return request.app.state.store


async def metrics_registry(request: Request) -> CollectorRegistry:
    return request.app.state.registry


async def submission_counter(request: Request) -> Counter:
    """POST /generate outcomes of this API process (accepted, replayed, rejected, queue_full)."""
    return request.app.state.submissions


async def job_views(request: Request) -> JobViews:
    return request.app.state.views


async def upload_slots(request: Request) -> UploadSlots:
    return request.app.state.upload_slots


SettingsDep = Annotated[Settings, Depends(app_settings)]
StoreDep = Annotated[JobStore, Depends(job_store)]
RegistryDep = Annotated[CollectorRegistry, Depends(metrics_registry)]
SubmissionsDep = Annotated[Counter, Depends(submission_counter)]


async def subject_store(request: Request) -> SubjectStore:
    return request.app.state.subjects


async def async_redis(request: Request) -> redis.asyncio.Redis:
    """An asyncio client, for waits that must not hold a worker thread (live event streams)."""
    return request.app.state.async_redis


SubjectsDep = Annotated[SubjectStore, Depends(subject_store)]
AsyncRedisDep = Annotated[redis.asyncio.Redis, Depends(async_redis)]
ViewsDep = Annotated[JobViews, Depends(job_views)]
UploadSlotsDep = Annotated[UploadSlots, Depends(upload_slots)]
