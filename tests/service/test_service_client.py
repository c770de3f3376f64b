"""The Python client and `bootpig submit` against a live stack: submit, follow, download, server errors."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bootpig.cli import main
from bootpig.client import Client, JobFailed, ServiceError


@pytest.fixture
def client(service):
    with Client(service.url, api_key="") as client:
        yield client


def test_client_submits_follows_and_downloads(client, dog_photos, tmp_path):
    job = client.submit("a dog in the snow", references=[dog_photos[0], dog_photos[1]], steps=3, seed=7)
    assert job["status"] == "queued" and job["params"]["seed"] == 7
    seen = []
    job = client.wait(job["id"], timeout=60, progress=seen.append, interval=0.05)
    assert job["status"] == "finished" and job["progress"] == {"step": 3, "total": 3}
    assert [state["status"] for state in seen][-1] == "finished"
    paths = client.download(job, tmp_path / "out")
    assert [path.name for path in paths] == [f"{job['id']}-0.png"]
    assert Image.open(io.BytesIO(paths[0].read_bytes())).size == (64, 64)


def test_client_raises_the_servers_message(client, photo_bytes):
    with pytest.raises(ServiceError) as caught:
        client.submit("a dog", references=[photo_bytes[0]], steps=0)
    assert caught.value.status == 422 and caught.value.field == "steps"
    assert "greater than or equal to 1" in caught.value.message
    with pytest.raises(ServiceError) as caught:
        client.job("0" * 32)
    assert caught.value.status == 404 and caught.value.message == "no such job"


def test_client_wait_raises_when_the_job_is_canceled(service, client, photo_bytes):
    job = client.submit("a dog", references=[photo_bytes[0]], steps=200)
    client.cancel(job["id"])
    with pytest.raises(JobFailed, match="canceled"):
        client.wait(job["id"], timeout=60, interval=0.05)


def test_cli_submit_writes_the_images(service, dog_photos, tmp_path, capsys):
    out = tmp_path / "cli-out"
    code = main(
        ["submit", "--server", service.url, "--ref", str(dog_photos[2]), "--prompt", "a dog"]
        + ["--steps", "2", "--num-images", "2", "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = captured.out.split()
    assert len(printed) == 2 and all(path.endswith(".png") for path in printed)
    assert sorted(path.name for path in out.iterdir()) == sorted(p.rsplit("/", 1)[1] for p in printed)


def test_cli_submit_shows_the_server_error(service, dog_photos, tmp_path, capsys):
    code = main(
        ["submit", "--server", service.url, "--ref", str(dog_photos[0]), "--prompt", "a dog"]
        + ["--width", "100", "--out", str(tmp_path)]
    )
    assert code == 1
    assert capsys.readouterr().err.strip() == "bootpig submit: width: Input should be a multiple of 8"
    code = main(
        ["submit", "--server", "http://127.0.0.1:9", "--ref", str(dog_photos[0]), "--prompt", "x"]
        + ["--out", str(tmp_path)]
    )
    assert code == 1 and "cannot reach http://127.0.0.1:9" in capsys.readouterr().err
