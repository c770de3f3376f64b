"""GET /jobs/{id}/events: live progress over Server-Sent Events, served by another API replica."""

from __future__ import annotations

import httpx
import pytest

from bootpig.client import Client, ServiceError


@pytest.fixture(scope="module")
def replica(service) -> str:
    """A second API process on the same Redis: it never sees the submission, only Redis."""
    return service.start_api()


def test_events_stream_status_progress_and_result_from_another_replica(service, replica, photo_bytes):
    with Client(service.url, api_key="") as first, Client(replica, api_key="") as second:
        job = first.submit("a dog", references=[photo_bytes[0]], steps=12)
        events = list(second.events(job["id"]))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "status" and kinds[-1] == "finished", kinds
    steps = [data["progress"]["step"] for kind, data in events if kind == "progress"]
    assert len(steps) >= 3 and steps == sorted(steps)  # several steps seen live, in order
    final = events[-1][1]
    assert final["id"] == job["id"] and final["progress"] == {"step": 12, "total": 12}
    assert final["images"] == [f"/jobs/{job['id']}/images/0"]


def test_events_of_an_ended_job_end_at_once(service, photo_bytes, poll):
    with Client(service.url, api_key="") as client:
        job = client.submit("a dog", references=[photo_bytes[0]], steps=2)
        client.wait(job["id"], timeout=60, interval=0.05)
        assert [kind for kind, _ in client.events(job["id"])] == ["finished"]


def test_a_canceled_job_ends_its_stream(service, replica, photo_bytes):
    with Client(service.url, api_key="") as client:
        job = client.submit("a dog", references=[photo_bytes[0]], steps=200)
        seen = []
        for kind, data in client.events(job["id"]):
            seen.append(kind)
            if kind == "progress" and data["progress"]["step"] >= 2 and "cancel" not in seen:
                client.cancel(job["id"])
                seen.append("cancel")
        assert seen[-1] == "canceled" and "progress" in seen


def test_events_answer_404_for_unknown_jobs_and_other_clients(service):
    with Client(service.url, api_key="") as client, pytest.raises(ServiceError) as caught:
        list(client.events("f" * 32))
    assert caught.value.status == 404 and caught.value.message == "no such job"
    response = httpx.get(f"{service.url}/jobs/{'f' * 32}/events", timeout=10)
    assert response.status_code == 404 and response.headers["content-type"] == "application/json"
