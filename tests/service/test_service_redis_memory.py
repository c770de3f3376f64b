"""Redis holds bounded inputs per job, a bounded number of jobs per client, and ended jobs briefly."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

ENDED_TTL = 120
PER_CLIENT = 3
STORED_SIDE = 1024


@pytest.fixture(scope="module")
def stack(make_stack):
    """An API with no worker: every accepted job stays queued, with its inputs in Redis."""
    stack = make_stack(
        ended_job_ttl=ENDED_TTL, max_queued_jobs_per_client=PER_CLIENT, stored_reference_side=STORED_SIDE
    )
    stack.start_api()
    return stack


@pytest.fixture
def client(stack):
    with httpx.Client(base_url=stack.url, timeout=60) as http:
        yield http
        for job_id in getattr(http, "submitted", []):
            http.delete(f"/jobs/{job_id}")  # each test leaves the client's quota as it found it


def submit(client: httpx.Client, *images: bytes) -> httpx.Response:
    files = [("images", (f"{i}.img", data, "application/octet-stream")) for i, data in enumerate(images)]
    response = client.post("/generate", data={"prompt": "a dog", "steps": "2"}, files=files)
    if response.status_code == 202:
        client.submitted = [*getattr(client, "submitted", []), response.json()["id"]]
    return response


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def stored_inputs(stack, job_id: str) -> list[bytes]:
    keys = sorted(stack.redis.scan_iter(match=f"{stack.prefix}job:{job_id}:input:*"))
    return [stack.redis.get(key) for key in keys]


def test_large_uploads_are_stored_downscaled(stack, client, photo_bytes):
    noise = np.random.default_rng(0).integers(0, 256, (1500, 1500, 3), dtype=np.uint8)
    heavy_png = encode(Image.fromarray(noise), "PNG")  # ~6.7 MB of incompressible pixels
    big_photo = encode(Image.open(io.BytesIO(photo_bytes[0])).resize((3000, 2000)), "JPEG", quality=95)
    response = submit(client, heavy_png, big_photo, photo_bytes[1])
    assert response.status_code == 202, response.text
    heavy, big, small = stored_inputs(stack, response.json()["id"])
    assert len(heavy) + len(big) < 2 * 2**20 < len(heavy_png)
    for data in (heavy, big):
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG" and max(image.size) == STORED_SIDE and len(data) <= STORED_SIDE**2
    assert Image.open(io.BytesIO(big)).size == (1024, 683)  # aspect ratio kept
    assert small == photo_bytes[1]  # already small: stored as uploaded


def test_one_client_cannot_fill_the_queue(client, photo_bytes):
    accepted = [submit(client, photo_bytes[0]) for _ in range(PER_CLIENT)]
    assert [r.status_code for r in accepted] == [202] * PER_CLIENT
    refused = submit(client, photo_bytes[0])
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_jobs"
    assert client.delete(f"/jobs/{accepted[0].json()['id']}").status_code == 202
    assert submit(client, photo_bytes[0]).status_code == 202  # a canceled job no longer counts


def test_canceled_jobs_expire_sooner_than_results(stack, client, photo_bytes):
    job_id = submit(client, photo_bytes[0]).json()["id"]
    assert stack.redis.ttl(f"{stack.prefix}job:{job_id}") > ENDED_TTL  # waiting: input_ttl
    assert client.delete(f"/jobs/{job_id}").json()["status"] == "canceled"
    assert 0 < stack.redis.ttl(f"{stack.prefix}job:{job_id}") <= ENDED_TTL
