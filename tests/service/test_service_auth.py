"""API keys: off by default; when set, unknown callers get 401 and clients never see each other's jobs."""

from __future__ import annotations

import httpx
import pytest
from service_http import submit as submit_job


@pytest.fixture(scope="module")
def keyed_url(service):
    return service.start_api(api_keys="key-alice, key-bob")


def client_for(url: str, key: str | None, bearer: bool = False) -> httpx.Client:
    headers = {}
    if key is not None:
        headers = {"Authorization": f"Bearer {key}"} if bearer else {"X-API-Key": key}
    return httpx.Client(base_url=url, timeout=30, headers=headers)


def submit(client: httpx.Client, photo: bytes, **headers) -> httpx.Response:
    return submit_job(client, [photo], headers=headers)


def test_missing_or_wrong_key_is_401(keyed_url, photo_bytes):
    for key in (None, "key-mallory", ""):
        with client_for(keyed_url, key) as client:
            response = submit(client, photo_bytes[0])
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "unauthorized"
            assert client.get("/jobs/" + "0" * 32).status_code == 401
    with client_for(keyed_url, None) as client:  # probes stay open
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200


def test_clients_see_only_their_own_jobs(keyed_url, photo_bytes, poll):
    with client_for(keyed_url, "key-alice") as alice, client_for(keyed_url, "key-bob", bearer=True) as bob:
        response = submit(alice, photo_bytes[0])
        assert response.status_code == 202
        job_id = response.json()["id"]
        job = poll(alice, job_id)
        assert job["status"] == "finished"
        assert alice.get(job["images"][0]).status_code == 200
        for request in (bob.get(f"/jobs/{job_id}"), bob.get(job["images"][0]), bob.delete(f"/jobs/{job_id}")):
            assert request.status_code == 404
            assert request.json()["error"]["code"] == "not_found"
        assert poll(bob, submit(bob, photo_bytes[0]).json()["id"])["status"] == "finished"


def test_idempotency_keys_are_per_client(keyed_url, photo_bytes):
    with client_for(keyed_url, "key-alice") as alice, client_for(keyed_url, "key-bob") as bob:
        first = submit(alice, photo_bytes[0], **{"Idempotency-Key": "same"})
        again = submit(alice, photo_bytes[0], **{"Idempotency-Key": "same"})
        other = submit(bob, photo_bytes[0], **{"Idempotency-Key": "same"})
        assert first.json()["id"] == again.json()["id"] != other.json()["id"]
        assert other.status_code == 202


def test_open_api_without_keys_needs_none(service, photo_bytes):
    with client_for(service.url, None) as client:
        assert submit(client, photo_bytes[0]).status_code == 202
