"""Cancellation, killed workers and graceful shutdown, with slowed-down steps (BOOTPIG_WORKER_STEP_DELAY)."""

from __future__ import annotations

import signal
import time

import httpx
import psutil
import pytest
from service_http import submit as submit_job

STEP_DELAY = 0.05  # seconds added to each ~10 ms tiny-model step
HEARTBEAT_TTL = 2.0  # the stacks' heartbeat: interval 0.5 s, ttl 2 s
DETECTION_BOUND = HEARTBEAT_TTL + 0.5 + 3.0  # ttl + one reaper round + slack for a busy 2-core machine


@pytest.fixture(scope="module")
def faults(make_stack):
    stack = make_stack(worker_step_delay=STEP_DELAY)
    stack.start_api()
    return stack


@pytest.fixture
def client(faults):
    with httpx.Client(base_url=faults.url, timeout=30) as http:
        yield http


def alive(stack) -> list[str]:
    return [name for name, process in stack.workers.items() if process.poll() is None]


def ensure_workers(stack, count: int) -> list[str]:
    missing = count - len(alive(stack))
    started = [stack.start_worker(wait=False) for _ in range(max(0, missing))]
    for name in started:
        stack.wait_for_worker(name)
    return alive(stack)


def submit(client, photo: bytes, steps: int) -> str:
    response = submit_job(client, [photo], steps=steps)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def job_field(stack, job_id: str, name: str) -> str:
    return (stack.redis.hget(f"{stack.prefix}job:{job_id}", name) or b"").decode()


def running(job: dict) -> bool:
    return job["status"] == "started" and job["progress"]["step"] >= 2


def test_cancel_queued_job_never_runs(faults, client, photo_bytes, poll):
    assert not alive(faults)  # nothing can pick the jobs up yet
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["reason"] == "no live worker with a loaded model"
    doomed, kept = submit(client, photo_bytes[0], 2), submit(client, photo_bytes[0], 2)
    assert client.get(f"/jobs/{doomed}").json()["position"] == 1
    assert client.get(f"/jobs/{kept}").json()["position"] == 2
    response = client.delete(f"/jobs/{doomed}")
    assert response.status_code == 202 and response.json()["status"] == "canceled"
    assert client.get(f"/jobs/{kept}").json()["position"] == 1
    ensure_workers(faults, 2)
    assert poll(client, kept)["status"] == "finished"
    job = client.get(f"/jobs/{doomed}").json()
    assert job["status"] == "canceled" and job["error"] and job["timings"]["started_at"] is None
    assert job_field(faults, doomed, "runs") == "0"
    assert client.delete(f"/jobs/{doomed}").status_code == 409


def test_cancel_running_job_stops_at_next_step(faults, client, photo_bytes, poll):
    ensure_workers(faults, 1)
    job_id = submit(client, photo_bytes[0], 200)
    poll(client, job_id, until=running)
    response = client.delete(f"/jobs/{job_id}")
    assert response.status_code == 202
    assert response.json()["status"] in ("started", "canceled")
    asked = time.monotonic()
    job = poll(client, job_id, timeout=10)
    assert job["status"] == "canceled" and job["error"] == "canceled by the client"
    assert time.monotonic() - asked < 2.0
    assert job["progress"]["step"] < 200
    assert client.get(f"/jobs/{job_id}/images/0").status_code == 404
    assert poll(client, submit(client, photo_bytes[0], 2))["status"] == "finished"  # worker still serves


def test_sigkilled_worker_job_is_retried_on_another(faults, client, photo_bytes, poll):
    ensure_workers(faults, 2)
    job_id = submit(client, photo_bytes[0], 60)
    poll(client, job_id, until=running)
    victim = job_field(faults, job_id, "worker")
    faults.signal_worker(victim, signal.SIGKILL).wait()
    killed = time.monotonic()
    retried = poll(client, job_id, timeout=30, until=lambda j: j["attempt"] == 2)
    assert time.monotonic() - killed < DETECTION_BOUND, retried
    job = poll(client, job_id, timeout=60)
    assert job["status"] == "finished" and job["attempt"] == 2 and len(job["images"]) == 1
    assert job_field(faults, job_id, "worker") != victim
    assert job_field(faults, job_id, "runs") == "2"


def test_job_failing_twice_by_dead_workers_is_failed_with_reason(faults, client, photo_bytes, poll):
    ensure_workers(faults, 2)
    job_id = submit(client, photo_bytes[0], 200)
    for attempt in (1, 2):
        poll(client, job_id, timeout=30, until=lambda j, a=attempt: running(j) and j["attempt"] == a)
        faults.signal_worker(job_field(faults, job_id, "worker"), signal.SIGKILL).wait()
    killed = time.monotonic()
    job = poll(client, job_id, timeout=30)
    assert time.monotonic() - killed < DETECTION_BOUND
    assert job["status"] == "failed" and "stopped unexpectedly" in job["error"]
    assert not faults.redis.sismember(f"{faults.prefix}running", job_id)


def test_sigterm_lets_the_running_job_finish(faults, client, photo_bytes, poll):
    [name] = ensure_workers(faults, 1)
    job_id = submit(client, photo_bytes[0], 40)
    poll(client, job_id, until=running)
    process = faults.signal_worker(name, signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "finished" and job["attempt"] == 1
    assert not faults.redis.exists(f"{faults.prefix}worker:{name}")  # it said goodbye


def test_job_over_its_time_limit_fails_and_the_worker_goes_on(faults, client, photo_bytes, poll):
    assert not alive(faults)
    name = faults.start_worker(job_timeout=1)
    job = poll(client, submit(client, photo_bytes[0], 200), timeout=30)
    assert job["status"] == "failed" and "1 s limit" in job["error"]
    assert 0 < job["progress"]["step"] < 200
    assert poll(client, submit(client, photo_bytes[0], 2))["status"] == "finished"
    assert faults.signal_worker(name, signal.SIGTERM).wait(timeout=30) == 0


def test_restarting_the_api_loses_no_job(faults, photo_bytes, poll):
    ensure_workers(faults, 1)
    other_api = faults.start_api()
    with httpx.Client(base_url=other_api, timeout=30) as client:
        job_id = submit(client, photo_bytes[0], 40)
    api_process = faults.processes[-1]
    api_process.kill()
    api_process.wait()
    restarted = faults.start_api()
    with httpx.Client(base_url=restarted, timeout=30) as client:
        assert poll(client, job_id)["status"] == "finished"


def test_api_processes_end_when_their_supervisor_is_killed(faults):
    """`bootpig serve` runs api_workers (2) uvicorn processes; SIGKILLed, it cannot stop them itself."""
    faults.start_api()
    supervisor = faults.processes[-1]
    children = psutil.Process(supervisor.pid).children(recursive=True)
    api_processes = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
    assert len(api_processes) == 2, [c.cmdline() for c in children]
    supervisor.kill()
    supervisor.wait()
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, [p.pid for p in alive]


def test_killed_worker_with_a_fixed_name_restarts_at_once(make_stack, photo_bytes, poll):
    stack = make_stack(worker_step_delay=STEP_DELAY)
    stack.start_api()
    stack.start_worker("fixed-name")
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        job_id = submit(client, photo_bytes[0], 40)
        poll(client, job_id, until=running)
        stack.signal_worker("fixed-name", signal.SIGKILL).wait()
        stack.start_worker("fixed-name", wait=False)  # RQ still holds the dead worker's registration
        job = poll(client, job_id, timeout=60)
    assert job["status"] == "finished" and job["attempt"] == 2, job
    assert stack.workers["fixed-name"].poll() is None, stack.log("worker-fixed-name.log")
