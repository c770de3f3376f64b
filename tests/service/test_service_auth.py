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


def test_readyz_shows_no_job_ids_hosts_or_paths_without_the_admin_key(service, photo_bytes, poll):
    import socket

    admin_url = service.start_api(admin_key="op-secret")
    with client_for(admin_url, None) as client:
        files = [("images", ("ref.jpg", photo_bytes[0], "image/jpeg"))]
        job_id = client.post("/generate", data={"prompt": "a dog", "steps": "40"}, files=files).json()["id"]
        poll(client, job_id, until=lambda job: job["status"] == "started")  # its worker's beat names it
        public = client.get("/readyz")
        detail = client.get("/readyz", headers={"X-Admin-Key": "op-secret"})
        wrong = client.get("/readyz", headers={"X-Admin-Key": "guess"})
    host, model_dir = socket.gethostname(), service.env["BOOTPIG_MODEL"]
    assert public.status_code == 200 and public.json()["ready"] and public.json()["live_workers"] >= 1
    for secret in (job_id, host, model_dir, *service.workers):
        assert secret not in public.text, secret
    assert detail.status_code == 200
    workers = detail.json()["workers"]
    assert {w["name"] for w in workers} <= set(service.workers) and workers[0]["host"] == host
    assert detail.json()["models"] == [model_dir]
    assert wrong.status_code == 401 and "workers" not in wrong.text
