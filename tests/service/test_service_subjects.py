"""Subjects on a live stack: prepare once, check the cut-outs, generate from them, ownership, expiry, CLI."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from bootpig.cli import main
from bootpig.client import Client, ServiceError
from bootpig.settings import Settings


def form(**fields: str) -> list[tuple[str, tuple[None, str]]]:
    """Text fields as multipart parts: POST /generate reads multipart/form-data only (curl -F)."""
    return [(name, (None, value)) for name, value in fields.items()]


def wait_ready(client: httpx.Client, subject_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        subject = client.get(f"/subjects/{subject_id}").raise_for_status().json()
        if subject["status"] != "preparing":
            return subject
        assert time.monotonic() < deadline, subject
        time.sleep(0.05)


@pytest.fixture(scope="module")
def http(service):
    with httpx.Client(base_url=service.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def ready_subject(http, dog_photos) -> dict:
    """Two DreamBooth photos (what a user uploads), prepared without segmentation."""
    files = [("images", (path.name, path.read_bytes(), "image/jpeg")) for path in dog_photos[:2]]
    response = http.post("/subjects", data={"name": "rex", "segment": "none"}, files=files)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/subjects/{response.json()['id']}"
    assert response.json()["status"] == "preparing"
    subject = wait_ready(http, response.json()["id"])
    assert subject["status"] == "ready", subject
    return subject


def test_prepared_references_are_served_as_png_and_stored_compactly(service, http, ready_subject):
    assert ready_subject["name"] == "rex" and ready_subject["reference_size"] == 64
    assert len(ready_subject["references"]) == 2
    for url in ready_subject["references"]:
        response = http.get(url)
        assert response.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(response.content)).size == (64, 64)
    keys = {
        key.decode()
        for key in service.redis.scan_iter(match=f"{service.prefix}subject:{ready_subject['id']}*")
    }
    assert not any(":upload:" in key for key in keys)  # the raw uploads are gone once prepared
    stored = [service.redis.strlen(key) for key in keys if ":ref:" in key]
    raw_at_reference_size = 64 * 64 * 3  # what is kept depends on the model's size, never on the upload's
    assert len(stored) == 2 and all(size < raw_at_reference_size for size in stored)
    assert http.get(f"/subjects/{ready_subject['id']}/references/2").status_code == 404


def test_generate_from_a_subject_skips_segmentation_and_keeps_it_alive(service, http, ready_subject, poll):
    subject_id = ready_subject["id"]
    service.redis.expire(f"{service.prefix}subject:{subject_id}", 60)  # as if nearly expired
    response = http.post("/generate", files=form(prompt="a dog", steps="2", subject_id=subject_id))
    assert response.status_code == 202, response.text
    job = poll(http, response.json()["id"])
    assert job["status"] == "finished" and job["subject_id"] == subject_id
    assert job["params"]["segment"] == "none"
    subject = http.get(f"/subjects/{subject_id}").json()
    assert subject["expires_in"] > 3600 and subject["last_used_at"] is not None  # used: expiry restarted


def test_fast_jobs_of_a_subject_reuse_its_reference_features_on_the_worker(http, ready_subject, poll):
    """The second `reference_schedule=once` job of a subject takes the worker's cached features and makes
    the same image; exact-mode jobs say nothing (see test_service_feature_cache.py for the details)."""
    fields = dict(prompt="a dog, cached", steps="2", seed="5", subject_id=ready_subject["id"])
    jobs, pixels = [], []
    for schedule in ("once", "once", "1"):
        job_id = http.post("/generate", files=form(**fields, reference_schedule=schedule)).json()["id"]
        jobs.append(poll(http, job_id))
        assert jobs[-1]["status"] == "finished", jobs[-1]
        png = http.get(jobs[-1]["images"][0]).content
        pixels.append(np.asarray(Image.open(io.BytesIO(png)), dtype=np.float32))
    assert [job["reference_features"] for job in jobs] == ["computed", "cached", None]
    assert np.abs(pixels[1] - pixels[0]).max() <= 1.0


def test_exactly_one_of_images_and_subject(http, ready_subject, photo_bytes):
    files = [("images", ("dog.jpg", photo_bytes[0], "image/jpeg"))]
    both = http.post("/generate", data={"prompt": "a dog", "subject_id": ready_subject["id"]}, files=files)
    assert both.status_code == 422
    assert both.json()["error"] == {
        "code": "images_and_subject",
        "message": "send either images or subject_id, not both",
        "field": "images,subject_id",
    }
    neither = http.post("/generate", files=[("prompt", (None, "a dog"))])
    assert neither.status_code == 422 and neither.json()["error"]["code"] == "no_images"
    assert "subject_id" in neither.json()["error"]["message"]
    unknown = http.post("/generate", files=[("prompt", (None, "a dog")), ("subject_id", (None, "0" * 32))])
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "subject_id"


def test_failed_preparation_is_reported_and_not_usable(http, photo_bytes):
    """segment=tracer on a worker without TRACER weights: the subject fails with the worker's message."""
    files = [("images", ("dog.jpg", photo_bytes[0], "image/jpeg"))]
    created = http.post("/subjects", data={"segment": "tracer"}, files=files).json()
    subject = wait_ready(http, created["id"])
    assert subject["status"] == "failed" and "segment=none" in subject["error"]
    response = http.post(
        "/generate", files=[("prompt", (None, "a dog")), ("subject_id", (None, subject["id"]))]
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "subject_not_ready"


def test_subject_validation(http, photo_bytes):
    files = [("images", ("dog.jpg", photo_bytes[0], "image/jpeg"))]
    bad_segment = http.post("/subjects", data={"segment": "magic"}, files=files)
    assert bad_segment.status_code == 422 and bad_segment.json()["error"]["field"] == "segment"
    unknown = http.post("/subjects", data={"prompt": "x"}, files=files)
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "prompt"
    no_image = http.post("/subjects", files=[("name", (None, "x"))])
    assert no_image.status_code == 422 and no_image.json()["error"]["code"] == "no_images"
    not_image = http.post("/subjects", files=[("images", ("a.jpg", b"text", "image/jpeg"))])
    assert not_image.status_code == 415 and not_image.json()["error"]["index"] == 0


def test_delete_keeps_submitted_jobs_working(service, http, photo_bytes, poll):
    files = [("images", ("dog.jpg", photo_bytes[1], "image/jpeg"))]
    subject = wait_ready(http, http.post("/subjects", data={"segment": "none"}, files=files).json()["id"])
    job = http.post("/generate", files=form(prompt="a dog", steps="2", subject_id=subject["id"])).json()
    assert http.delete(f"/subjects/{subject['id']}").status_code == 204
    assert http.get(f"/subjects/{subject['id']}").status_code == 404
    assert http.delete(f"/subjects/{subject['id']}").status_code == 404
    assert subject["id"] not in [s["id"] for s in http.get("/subjects").json()["subjects"]]
    assert poll(http, job["id"])["status"] == "finished"
    assert not list(service.redis.scan_iter(match=f"{service.prefix}subject:{subject['id']}*"))


def test_subjects_follow_the_api_key(service, photo_bytes):
    url = service.start_api(api_keys="key-ann,key-ben")
    with Client(url, api_key="key-ann") as ann, Client(url, api_key="key-ben") as ben:
        subject = ann.wait_subject(ann.create_subject([photo_bytes[0]], segment="none")["id"], timeout=60)
        assert [s["id"] for s in ann.subjects()] == [subject["id"]]
        assert ben.subjects() == []
        for call in (lambda: ben.subject(subject["id"]), lambda: ben.reference(subject["id"], 0)):
            with pytest.raises(ServiceError, match="no such subject"):
                call()
        with pytest.raises(ServiceError) as caught:
            ben.submit("a dog", subject_id=subject["id"], steps=2)
        assert caught.value.status == 404 and caught.value.field == "subject_id"
        with pytest.raises(ServiceError):
            ben.delete_subject(subject["id"])
        ann.delete_subject(subject["id"])


def test_subjects_expire_after_seven_days_by_default(ready_subject):
    assert Settings().subject_ttl == 7 * 24 * 3600
    assert 7 * 24 * 3600 - 600 < ready_subject["expires_in"] <= 7 * 24 * 3600


def test_cli_subjects_and_submit_with_a_subject(service, dog_photos, tmp_path, capsys):
    server = ["--server", service.url]
    refs = tmp_path / "refs"
    assert (
        main(
            ["subjects", "create", *server, "--ref", str(dog_photos[0]), "--name", "cli dog"]
            + ["--segment", "none", "--references-out", str(refs)]
        )
        == 0
    )
    subject_id = capsys.readouterr().out.strip()
    assert [p.name for p in refs.iterdir()] == [f"{subject_id}-ref-0.png"]
    assert main(["subjects", "list", *server]) == 0
    assert '"name": "cli dog"' in capsys.readouterr().out
    out = tmp_path / "out"
    assert (
        main(
            ["submit", *server, "--subject", subject_id, "--prompt", "a dog", "--steps", "2"]
            + ["--out", str(out)]
        )
        == 0
    )
    assert len(list(out.glob("*.png"))) == 1
    capsys.readouterr()
    assert main(["subjects", "delete", *server, subject_id]) == 0
    assert main(["subjects", "delete", *server, subject_id]) == 1
    assert capsys.readouterr().err.strip().endswith("bootpig subjects: id: no such subject")
