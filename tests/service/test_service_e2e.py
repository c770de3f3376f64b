"""End to end through real HTTP, a real Redis and a real worker process on the tiny model."""

from __future__ import annotations

import asyncio
import io

import httpx
import psutil
import pytest
from PIL import Image
from service_http import submit


@pytest.fixture
def client(service):
    with httpx.Client(base_url=service.url, timeout=30) as http:
        yield http


def test_generate_end_to_end_with_progress(client, photo_bytes, poll):
    response = submit(client, photo_bytes, steps=40, height=64, width=72, num_images=2)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] in ("queued", "started") and len(job["id"]) == 32
    assert isinstance(job["params"]["seed"], int)
    assert job["params"]["guidance_text"] > 0 and "pooling" not in job["params"]  # pooling: the model's

    steps_seen = set()
    final = poll(
        client, job["id"], until=lambda j: steps_seen.add(j["progress"]["step"]) or j["status"] == "finished"
    )
    assert final["status"] == "finished", final
    assert {s for s in steps_seen if 0 < s < 40}, f"no intermediate progress seen: {steps_seen}"
    assert final["progress"] == {"step": 40, "total": 40}
    assert final["params"]["height"] == 64 and final["params"]["width"] == 72
    assert final["params"]["pooling"] == "softmax"  # filled in from the checkpoint by the worker
    assert final["timings"]["run_seconds"] > 0 and final["timings"]["queued_seconds"] >= 0
    assert len(final["images"]) == 2
    for url in final["images"]:
        image_response = client.get(url)
        assert image_response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(image_response.content))
        assert image.format == "PNG" and image.size == (72, 64)
    assert client.get(f"/jobs/{job['id']}/images/2").status_code == 404


def test_same_seed_reproduces_and_other_seed_differs(client, photo_bytes, poll):
    ids = [submit(client, photo_bytes[:1], seed=seed).json()["id"] for seed in (1234, 1234, 99)]
    jobs = [poll(client, job_id) for job_id in ids]
    assert [j["status"] for j in jobs] == ["finished"] * 3
    assert [j["params"]["seed"] for j in jobs] == [1234, 1234, 99]
    pixels = [Image.open(io.BytesIO(client.get(j["images"][0]).content)).tobytes() for j in jobs]
    assert pixels[0] == pixels[1]
    assert pixels[0] != pixels[2]


def test_random_seed_is_returned_and_reproducible(client, photo_bytes, poll):
    first = poll(client, submit(client, photo_bytes[:1]).json()["id"])
    again = poll(client, submit(client, photo_bytes[:1], seed=first["params"]["seed"]).json()["id"])
    assert client.get(first["images"][0]).content == client.get(again["images"][0]).content


def test_idempotency_key_returns_the_same_job(client, photo_bytes, poll):
    headers = {"Idempotency-Key": "retry-me-123"}
    first = submit(client, photo_bytes[:1], headers=headers)
    second = submit(client, photo_bytes[:1], headers=headers)
    other = submit(client, photo_bytes[:1], headers={"Idempotency-Key": "another"})
    assert first.status_code == 202 and second.status_code == 200
    assert second.headers["idempotent-replayed"] == "true"
    assert first.json()["id"] == second.json()["id"] != other.json()["id"]
    assert poll(client, first.json()["id"])["attempt"] == 1


def job_count(service) -> int:
    """Job records of the shared stack (`<prefix>job:<id>`, not their image keys)."""
    keys = service.redis.scan_iter(match=f"{service.prefix}job:*", count=1000)
    return sum(1 for key in keys if key.count(b":") == service.prefix.count(":") + 1)


def test_idempotency_key_reused_for_another_request_is_rejected(client, service, photo_bytes, poll):
    headers = {"Idempotency-Key": "reuse-me-456"}
    first = submit(client, photo_bytes[:1], headers=headers)  # no seed: the API picks one
    replay = submit(client, photo_bytes[:1], headers=headers)
    assert first.status_code == 202 and replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"]  # the random seed does not make it "another request"
    jobs = job_count(service)
    for changed in (
        submit(client, photo_bytes[:1], headers=headers, prompt="a cat on the beach"),
        submit(client, photo_bytes[:1], headers=headers, steps=3),
        submit(client, photo_bytes[1:2], headers=headers),
        submit(client, photo_bytes[:2], headers=headers),
    ):
        assert changed.status_code == 422, changed.text
        error = changed.json()["error"]
        assert error["code"] == "idempotency_key_reused" and error["field"] == "Idempotency-Key"
    assert job_count(service) == jobs  # no job was created for the conflicting requests
    assert poll(client, first.json()["id"])["status"] == "finished"
    assert submit(client, photo_bytes[:1], headers=headers).json()["id"] == first.json()["id"]


def test_missing_tracer_weights_fail_the_job_clearly(client, photo_bytes, poll):
    job = poll(client, submit(client, photo_bytes[:1], segment="tracer").json()["id"])
    assert job["status"] == "failed"
    assert "segment=none" in job["error"] and "/" not in job["error"].replace("segment=", "")
    # the worker keeps serving after a failed job
    assert poll(client, submit(client, photo_bytes[:1]).json()["id"])["status"] == "finished"


def test_whole_jpeg_with_damaged_data_fails_its_job_clearly(client, photo_bytes, poll):
    """The API checks a JPEG kept as uploaded by its headers and end marker; damage inside the
    compressed data that the decoder refuses is the worker's to report, as a failed job."""
    photo = photo_bytes[0]
    third = len(photo) // 3
    damaged = photo[:third] + b"\xff" * third + photo[2 * third :]
    response = submit(client, [photo_bytes[1], damaged])
    assert response.status_code == 202, response.text
    job = poll(client, response.json()["id"])
    assert job["status"] == "failed" and job["error"] == "reference image 1 cannot be read", job


def test_health_ready_metrics_docs(client, service):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] and body["demo"] is True  # the tiny random-weight model counts as a demo
    assert body["live_workers"] == body["loaded_workers"] == 1
    metrics = client.get("/metrics").text
    for name in (
        "bootpig_queue_depth",
        "bootpig_workers 1.0",
        "bootpig_jobs_total",
        "bootpig_job_seconds_bucket",
    ):
        assert name in metrics
    schema = client.get("/openapi.json").json()
    form = schema["paths"]["/generate"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["steps"]["maximum"] >= 50 and form["properties"]["images"]["maxItems"] == 8
    assert set(form["properties"]["pooling"]["enum"]) == {"softmax", "argmax", "average", "concat"}
    assert client.get("/docs").status_code == 200


def test_fifty_concurrent_submissions_each_run_exactly_once(service, photo_bytes, poll):
    async def submit_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as http:
            files = [("images", ("ref.jpg", photo_bytes[0], "image/jpeg"))]

            async def one(i: int) -> httpx.Response:
                data = {"prompt": f"dog number {i}", "steps": "1", "segment": "none", "seed": str(i)}
                return await http.post("/generate", data=data, files=files)

            return await asyncio.gather(*(one(i) for i in range(50)))

    responses = asyncio.run(submit_all())
    assert [r.status_code for r in responses] == [202] * 50
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == 50
    with httpx.Client(base_url=service.url, timeout=30) as client:
        jobs = [poll(client, job_id, timeout=120) for job_id in ids]
    assert all(j["status"] == "finished" for j in jobs)
    assert sorted(j["params"]["seed"] for j in jobs) == list(range(50))
    runs = [int(service.redis.hget(f"{service.prefix}job:{job_id}", "runs")) for job_id in ids]
    assert runs == [1] * 50  # none ran twice
    assert service.redis.llen(f"rq:queue:{service.queue}") == 0


def test_a_worker_lowers_its_cpu_priority_below_the_api(service):
    """worker_nice: a worker sharing the CPU with the API runs at a higher niceness (default 10)."""
    name = next(iter(service.workers))
    worker = psutil.Process(service.workers[name].pid)
    own = psutil.Process().nice()
    assert worker.nice() == min(19, own + 10)
