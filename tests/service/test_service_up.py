"""`bootpig up` starts an embedded Redis when none answers, then the API and a worker; SIGTERM stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import redis
from service_http import free_port


def test_up_runs_the_whole_service_and_stops_cleanly(photo_bytes, tmp_path, poll):
    """The README's main job on a fresh machine: no model, no TRACER weights, no Redis on the port."""
    redis_port, api_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BOOTPIG_")},
        "REDIS_URL": redis_url,
        "BOOTPIG_DEVICE": "cpu",
        "BOOTPIG_TRACER_WEIGHTS": str(tmp_path / "no-tracer.pth"),
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
    try:
        deadline = time.monotonic() + 90
        while True:
            assert up.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert (tmp_path / ".bootpig" / "redis").is_dir()  # the embedded Redis was started
        with httpx.Client(base_url=url, timeout=30) as client:
            files = [("images", ("ref.jpg", photo_bytes[0], "image/jpeg"))]
            job = client.post("/generate", data={"prompt": "a dog", "steps": "2"}, files=files).json()
            assert poll(client, job["id"])["status"] == "finished"  # demo defaults to segment=none
            assert job["params"]["segment"] == "none"
            ready = client.get("/readyz").json()
            assert ready["demo"] is True and "RANDOM-WEIGHT DEMO MODEL" in ready["warning"]
        assert (tmp_path / ".bootpig" / "demo-model" / "model_index.json").is_file()
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=40)
    assert code == 0, (tmp_path / "up.log").read_text()
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
