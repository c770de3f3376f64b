"""Webhook deliveries as every service process runs them: the job as the API shows it, from the store."""

from __future__ import annotations

from typing import Any

from app.schemas import job_view
from jobs.store import JobStore
from jobs.webhooks.delivery import WebhookDispatcher, WebhookQueue


def job_payload(store: JobStore):
    """The dispatcher's view of a job: its status and its JSON, or None once the job is gone."""

    def payload(job_id: str) -> tuple[str, dict[str, Any]] | None:
        record = store.get(job_id)
        if record is None:
            return None
        return record.status.value, job_view(record, None).model_dump(mode="json")

    return payload


def start_dispatcher(store: JobStore) -> WebhookDispatcher:
    """A running delivery thread on the store's Redis (stop it with `.stop()`)."""
    dispatcher = WebhookDispatcher(WebhookQueue(store.redis, store.settings), job_payload(store))
    dispatcher.start()
    return dispatcher
