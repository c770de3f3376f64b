"""Webhooks on a live stack: a real receiver on 127.0.0.1 (allow-listed), signature, retries after two
failures, delivery after the submitting API died, attempts on the job, SSRF refusals at submission."""

from __future__ import annotations

import json
import signal
import time

import httpx
import pytest
from service_http import submit
from webhook_receiver import WEBHOOK_SECRET, start_receiver

from jobs.webhooks.signing import EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


def submit_with_webhook(url: str, photo: bytes, webhook: str, steps: int = 2) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30) as client:
        return submit(client, [photo], webhook=webhook, steps=steps)


def wait_webhook(client: httpx.Client, job_id: str, state: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["webhook"]["state"] == state:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_signed_webhook_is_retried_after_two_failures(service, photo_bytes):
    receiver, server = start_receiver(fail_first=2)
    try:
        response = submit_with_webhook(service.url, photo_bytes[0], receiver.url)
        assert response.status_code == 202, response.text
        assert response.json()["webhook"] == {"url": receiver.url, "state": "waiting", "attempts": []}
        with httpx.Client(base_url=service.url, timeout=30) as client:
            job = wait_webhook(client, response.json()["id"], "delivered")
        requests = receiver.wait_for(3)
    finally:
        server.shutdown()
    assert [r.answered for r in requests] == [500, 500, 200]
    delivered = requests[-1]
    assert verify(
        WEBHOOK_SECRET,
        delivered.headers[TIMESTAMP_HEADER],
        delivered.headers[SIGNATURE_HEADER],
        delivered.body,
    )
    assert not verify(
        "another secret",
        delivered.headers[TIMESTAMP_HEADER],
        delivered.headers[SIGNATURE_HEADER],
        delivered.body,
    )
    assert delivered.headers[EVENT_HEADER] == "job.finished"
    payload = json.loads(delivered.body)
    assert payload["id"] == job["id"] and payload["status"] == "finished"
    assert payload["images"] == [f"{service.url}/jobs/{job['id']}/images/0"]  # absolute: usable as is
    assert httpx.get(payload["images"][0]).headers["content-type"] == "image/png"
    attempts = job["webhook"]["attempts"]
    assert [(a["attempt"], a["status_code"]) for a in attempts] == [(1, 500), (2, 500), (3, 200)]


def test_webhook_is_delivered_after_the_submitting_api_died(service, photo_bytes):
    """Deliveries are Redis state served by every process: the worker's dispatcher takes over."""
    receiver, server = start_receiver()
    doomed = service.start_api()
    process = service.processes[-1]
    try:
        response = submit_with_webhook(doomed, photo_bytes[0], receiver.url, steps=10)
        assert response.status_code == 202
        process.send_signal(signal.SIGKILL)
        process.wait()
        (request,) = receiver.wait_for(1)
    finally:
        server.shutdown()
    assert json.loads(request.body)["id"] == response.json()["id"]
    assert verify(
        WEBHOOK_SECRET, request.headers[TIMESTAMP_HEADER], request.headers[SIGNATURE_HEADER], request.body
    )


def test_canceled_jobs_fire_their_webhook(service, photo_bytes):
    receiver, server = start_receiver()
    try:
        job = submit_with_webhook(service.url, photo_bytes[0], receiver.url, steps=200).json()
        httpx.delete(f"{service.url}/jobs/{job['id']}", timeout=30)
        (request,) = receiver.wait_for(1)
    finally:
        server.shutdown()
    assert request.headers[EVENT_HEADER] == "job.canceled"
    assert json.loads(request.body)["status"] == "canceled"


@pytest.fixture(scope="module")
def guarded_url(service) -> str:
    """An API with the default (empty) allow-list."""
    return service.start_api(webhook_allow_hosts="")


@pytest.mark.parametrize(
    "webhook, reason",
    [
        ("http://10.0.0.7/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://localhost:8080/hook", "loopback"),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("gopher://example.com/", "http:// or https://"),
    ],
)
def test_ssrf_targets_are_refused_at_submission(guarded_url, photo_bytes, webhook, reason):
    response = submit_with_webhook(guarded_url, photo_bytes[0], webhook)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unsafe_webhook" and error["field"] == "webhook" and reason in error["message"]


def test_webhooks_need_a_secret(service, photo_bytes):
    url = service.start_api(webhook_secret="")
    response = submit_with_webhook(url, photo_bytes[0], "http://127.0.0.1:9/hook")
    assert response.status_code == 422 and response.json()["error"]["code"] == "webhooks_disabled"
