"""`bootpig up` starts an embedded Redis when none answers, then the API and a worker; SIGTERM stops all."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis
from PIL import Image
from service_http import free_port, submit

from model.served import DEMO_NAME, TOY_WORLD_NAME


def start_up(tmp_path: Path, bundled_model_dir: Path) -> tuple[subprocess.Popen, str, str]:
    """`bootpig up` as `scripts/run.sh` runs it: no model, no TRACER weights, no Redis on the port.

    The bundled model folder is named, so the test does not depend on whether the repository ships one."""
    redis_port, api_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BOOTPIG_")},
        "REDIS_URL": redis_url,
        "BOOTPIG_DEVICE": "cpu",
        "BOOTPIG_TRACER_WEIGHTS": str(tmp_path / "no-tracer.pth"),
        "BOOTPIG_BUNDLED_MODEL_DIR": str(bundled_model_dir),
        "OMP_NUM_THREADS": "1",
    }
    log = open(tmp_path / "up.log", "wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "bootpig.cli", "up", "--port", str(api_port), "--stop-timeout", "20"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 90
    while True:
        if up.poll() is not None or time.monotonic() > deadline:
            stop_up(up, tmp_path)
            raise AssertionError((tmp_path / "up.log").read_text())
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return up, url, redis_url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)


def stop_up(up: subprocess.Popen, tmp_path: Path) -> None:
    up.send_signal(signal.SIGTERM)
    assert up.wait(timeout=40) == 0, (tmp_path / "up.log").read_text()


def test_up_runs_the_whole_service_and_stops_cleanly(photo_bytes, tmp_path, poll):
    """The README's main job on a fresh machine, with no bundled model: the demo model, said loudly."""
    up, url, redis_url = start_up(tmp_path, tmp_path / "no-bundled-model")
    try:
        assert (tmp_path / ".bootpig" / "redis").is_dir()  # the embedded Redis was started
        with httpx.Client(base_url=url, timeout=30) as client:
            files = [("images", ("ref.jpg", photo_bytes[0], "image/jpeg"))]
            job = client.post("/generate", data={"prompt": "a dog", "steps": "2"}, files=files).json()
            assert poll(client, job["id"])["status"] == "finished"  # demo defaults to segment=none
            assert job["params"]["segment"] == "none"
            ready = client.get("/readyz").json()
            assert ready["demo"] is True and "RANDOM-WEIGHT DEMO MODEL" in ready["warning"]
            assert ready["serving"] == [{"name": DEMO_NAME, "kind": "demo", "native_size": 64}]
            assert client.get("/examples").json() == {"examples": []}
        assert (tmp_path / ".bootpig" / "demo-model" / "model_index.json").is_file()
    finally:
        stop_up(up, tmp_path)
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
        raise AssertionError("the embedded Redis is still running")
    except redis.exceptions.ConnectionError:
        pass
    try:
        httpx.get(f"{url}/healthz", timeout=1)
        raise AssertionError("the API is still running")
    except httpx.HTTPError:
        pass


def real_photo_512(path: Path) -> bytes:
    """A shipped DreamBooth photo at 512 px, the size of a user's upload for SD 2.1-base."""
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").resize((512, 512), Image.LANCZOS).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_up_serves_the_bundled_toy_model_when_no_model_is_configured(
    toy_model_export, dog_photos, tmp_path, poll
):
    """With a bundled model, `scripts/run.sh` serves it by name (not as the demo), at its 64 px, to real
    photos as well as to its own examples."""
    up, url, _ = start_up(tmp_path, toy_model_export)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            response = client.get("/readyz")
            ready = response.json()
            assert ready["demo"] is False and "warning" not in ready
            assert ready["serving"] == [{"name": TOY_WORLD_NAME, "kind": "toy-world", "native_size": 64}]
            assert str(tmp_path) not in response.text and str(toy_model_export) not in response.text

            photo = real_photo_512(dog_photos[0])
            job = submit(client, [photo], prompt="a photo of a dog, on the deep snow", segment="").json()
            job = poll(client, job["id"])
            assert job["status"] == "finished", job
            assert job["params"]["segment"] == "none"  # no TRACER weights here: up's default
            image = Image.open(io.BytesIO(client.get(job["images"][0]).raise_for_status().content))
            assert (image.format, image.size) == ("PNG", (64, 64))

            example = client.get("/examples").json()["examples"][0]
            pngs = [client.get(u).raise_for_status().content for u in example["images"]]
            files = [("images", (f"{n}.png", data, "image/png")) for n, data in enumerate(pngs)]
            fields = {"prompt": example["prompt"], "steps": "2"}
            job = client.post("/generate", data=fields, files=files).raise_for_status().json()
            assert poll(client, job["id"])["status"] == "finished"
        assert not (tmp_path / ".bootpig" / "demo-model").exists()
    finally:
        stop_up(up, tmp_path)
    assert "RANDOM-WEIGHT" not in (tmp_path / "up.log").read_text()
