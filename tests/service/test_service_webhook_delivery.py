"""The webhook queue in real Redis delivering to a real receiver: signature, retries, refusals, log."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
from webhook_receiver import start_receiver

from bootpig.settings import Settings
from jobs.webhooks.delivery import WebhookDispatcher, WebhookQueue
from jobs.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

SECRET = "test-secret"


@pytest.fixture
def queue(redis_url):
    prefix = f"test-wh-{uuid.uuid4().hex[:8]}:"
    settings = Settings(
        redis_url=redis_url,
        key_prefix=prefix,
        webhook_secret=SECRET,
        webhook_allow_hosts=["127.0.0.1"],
        webhook_retry_delay=0.1,
        webhook_max_attempts=4,
        webhook_timeout=5,
    )
    connection = redis.Redis.from_url(redis_url)
    yield WebhookQueue(connection, settings)
    keys = list(connection.scan_iter(match=f"{prefix}*"))
    if keys:
        connection.delete(*keys)


def run_until(dispatcher: WebhookDispatcher, done, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "webhook delivery did not settle"
        dispatcher.run_once()
        time.sleep(0.02)


def test_signed_delivery_is_retried_after_two_failures(queue):
    receiver, server = start_receiver(fail_first=2)
    jobs = {"j1": ("started", {})}
    dispatcher = WebhookDispatcher(queue, jobs.get)
    try:
        queue.register("j1", receiver.url, base_url="http://api.example:8000")
        dispatcher.run_once()
        assert receiver.requests == [] and queue.status("j1")["state"] == "waiting"  # job still running
        job = {
            "id": "j1",
            "status": "finished",
            "images": ["/jobs/j1/images/0"],
            "links": {"self": "/jobs/j1"},
        }
        jobs["j1"] = ("finished", job)
        run_until(dispatcher, lambda: queue.status("j1")["state"] == "delivered")
    finally:
        server.shutdown()
    assert [r.answered for r in receiver.requests] == [500, 500, 200]
    body = receiver.requests[0].body
    assert json.loads(body) == job | {
        "images": ["http://api.example:8000/jobs/j1/images/0"],
        "links": {"self": "http://api.example:8000/jobs/j1"},
    }
    for request in receiver.requests:
        assert request.body == body
        assert verify(SECRET, request.headers[TIMESTAMP_HEADER], request.headers[SIGNATURE_HEADER], body)
        assert request.headers[EVENT_HEADER] == "job.finished"
    assert len({r.headers[DELIVERY_HEADER] for r in receiver.requests}) == 1  # one id across retries
    attempts = queue.status("j1")["attempts"]
    assert [(a["attempt"], a["status_code"]) for a in attempts] == [(1, 500), (2, 500), (3, 200)]
    assert attempts[0]["error"] == "the receiver answered HTTP 500" and attempts[2]["error"] is None
    assert attempts[1]["at"] - attempts[0]["at"] >= 0.1 and attempts[2]["at"] - attempts[1]["at"] >= 0.2


def test_delivery_gives_up_after_max_attempts(queue):
    receiver, server = start_receiver(fail_first=100)
    dispatcher = WebhookDispatcher(queue, {"j2": ("failed", {})}.get)
    try:
        queue.register("j2", receiver.url)
        run_until(dispatcher, lambda: queue.status("j2")["state"] == "failed")
    finally:
        server.shutdown()
    assert len(receiver.requests) == queue.settings.webhook_max_attempts == 4
    assert receiver.requests[0].headers[EVENT_HEADER] == "job.failed"


def test_an_address_refused_at_delivery_time_is_not_retried(queue):
    """The guard runs again for each attempt: an allow-list removed meanwhile (or DNS changed) stops it."""
    dispatcher = WebhookDispatcher(queue, {"j3": ("finished", {})}.get)
    queue.register("j3", "http://10.9.9.9:9/hook")  # the allow-list names 127.0.0.1 only
    run_until(dispatcher, lambda: queue.status("j3")["state"] == "failed")
    (attempt,) = queue.status("j3")["attempts"]
    assert "private" in attempt["error"] and attempt["status_code"] is None


def test_only_one_process_claims_an_attempt(queue):
    queue.register("j4", "http://127.0.0.1:9/hook")
    assert queue.arm("j4", "job.finished", b"{}")
    assert not queue.arm("j4", "job.finished", b"{}")  # armed once only
    assert queue.claim_due(lease=30) == ["j4"]
    assert queue.claim_due(lease=30) == []  # leased to the first claimer


def test_a_job_that_expired_is_forgotten(queue):
    dispatcher = WebhookDispatcher(queue, {}.get)
    queue.register("gone", "http://127.0.0.1:9/hook")
    dispatcher.run_once()
    assert queue.watched() == []
