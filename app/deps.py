"""FastAPI dependencies for what every route shares: the settings, the job store, this replica's counters.

`create_app` puts them on `app.state` once; routes ask for them by type (`store: StoreDep`), so a test
can hand `create_app` its own store and every route uses it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry, Counter

from bootpig.settings import Settings
from jobs.store import JobStore


def app_settings(request: Request) -> Settings:
    return request.app.state.settings


def job_store(request: Request) -> JobStore:
    return request.app.state.store


def metrics_registry(request: Request) -> CollectorRegistry:
    return request.app.state.registry


def submission_counter(request: Request) -> Counter:
    """POST /generate outcomes of this API process (accepted, replayed, rejected, queue_full)."""
    return request.app.state.submissions


SettingsDep = Annotated[Settings, Depends(app_settings)]
StoreDep = Annotated[JobStore, Depends(job_store)]
RegistryDep = Annotated[CollectorRegistry, Depends(metrics_registry)]
SubmissionsDep = Annotated[Counter, Depends(submission_counter)]
