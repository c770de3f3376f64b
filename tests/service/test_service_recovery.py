"""Jobs cut off half-way through a state change, and cancellations that must survive a retry.

The crash cases are set up in this process on the stack's Redis, with the real `JobStore` whose RQ
enqueue is made to fail (what a process dying between its two Redis steps leaves behind); then the real
API and worker processes start and must bring every job to its end.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
import redis

from app.schemas import parse_generation_fields
from jobs.store import JobStore, connect

HEARTBEAT_TTL = 2.0  # the stacks' heartbeat: interval 0.5 s, ttl 2 s
RECOVERY_BOUND = 30.0  # worker start-up, orphans seen missing twice `HEARTBEAT_TTL` apart, slack for 2 cores


@pytest.fixture(scope="module")
def stack(make_stack):
    return make_stack()  # nothing runs yet: the tests set up the crashes first


@pytest.fixture(scope="module")
def store(stack) -> JobStore:
    settings = stack.settings(heartbeat_interval=0.5, heartbeat_ttl=HEARTBEAT_TTL)
    return JobStore(connect(settings), settings)


def new_job(store: JobStore, photo: bytes) -> str:
    params = parse_generation_fields({"prompt": "a dog", "steps": "2"}, "none") | {"seed": 7}
    record, _ = store.create("public", params, [photo])
    return record.id


def take(store: JobStore, job_id: str, worker: str) -> None:
    """What a worker does: pop the job's RQ entry, then claim the job."""
    store.queue.remove(store.get(job_id).rq_id)
    assert store.claim(job_id, 1, worker) == "ok"


def queued_jobs(store: JobStore) -> list[str]:
    keys = store.redis.scan_iter(match=store.job_key("*"), count=1000)
    ids = [key.decode().rpartition(":")[2] for key in keys if key.count(b":") == store.prefix.count(":") + 1]
    return [job_id for job_id in ids if store.get(job_id).status == "queued"]


def crash_on_enqueue(monkeypatch, store: JobStore) -> None:
    """From now on the RQ enqueue of this store dies, like a process killed right before it."""

    def die(*args, **kwargs):
        raise redis.exceptions.ConnectionError("simulated crash before the RQ enqueue")

    monkeypatch.setattr(store.queue, "enqueue_call", die)


def test_released_job_that_the_client_canceled_is_not_run_again(store, photo_bytes):
    job_id = new_job(store, photo_bytes[0])
    take(store, job_id, "stopping-worker")
    assert store.cancel(job_id) == "cancelling"
    store.release(job_id, 1, "stopping-worker")  # a second SIGTERM arrives before the next step
    job = store.get(job_id)
    assert job.status == "canceled" and job.error == "canceled by the client"
    assert store.queue_length() == 0 and store.inputs(job_id, 1) == [None]


def test_reaped_job_that_the_client_canceled_is_not_run_again(store, photo_bytes):
    job_id = new_job(store, photo_bytes[0])
    take(store, job_id, "killed-worker")  # no heartbeat: a dead worker
    assert store.cancel(job_id) == "cancelling"
    assert (job_id, "canceled") in store.reap()
    job = store.get(job_id)
    assert job.status == "canceled" and job.attempt == 1 and store.queue_length() == 0
    assert not store.redis.sismember(store.running_key, job_id)


def test_a_claim_renews_the_record_so_a_long_wait_cannot_expire_it_mid_run(store, photo_bytes):
    job_id = new_job(store, photo_bytes[0])
    store.queue.remove(store.get(job_id).rq_id)
    store.redis.expire(store.job_key(job_id), 30)  # it waited almost `input_ttl` in the queue
    assert store.claim(job_id, 1, "slow-worker") == "ok"
    assert store.redis.ttl(store.job_key(job_id)) > store.settings.job_timeout
    assert store.fail(job_id, 1, "slow-worker", "test over")
    assert store.redis.ttl(store.job_key(job_id)) > store.settings.ended_job_ttl - 10  # a failed job's life


def test_jobs_cut_off_between_their_two_redis_steps_still_run(stack, store, photo_bytes, poll, monkeypatch):
    released, reaped = new_job(store, photo_bytes[0]), new_job(store, photo_bytes[0])
    take(store, released, "stopping-worker")
    take(store, reaped, "killed-worker")
    crash_on_enqueue(monkeypatch, store)
    # A worker hands its job back on a forced stop (step 1) and dies before the enqueue (step 2).
    with pytest.raises(redis.exceptions.ConnectionError):
        store.release(released, 1, "stopping-worker")
    # The reaper requeues the job of a dead worker (step 1) and dies before the enqueue.
    with pytest.raises(redis.exceptions.ConnectionError):
        store.reap()
    # The API writes a new job's record and RQ entry in one transaction: dying, it leaves nothing.
    before = set(queued_jobs(store))
    with pytest.raises(redis.exceptions.ConnectionError):
        new_job(store, photo_bytes[0])
    assert set(queued_jobs(store)) == before
    monkeypatch.undo()
    # A live worker lost track of its job (its outcome could not be stored): the job stays `started`.
    forgotten = new_job(store, photo_bytes[0])
    take(store, forgotten, "live-worker")
    beat = {"name": "live-worker", "job": None, "beat_at": time.time(), "since": time.time()}
    store.redis.set(store.worker_key("live-worker"), json.dumps(beat), ex=600)
    for job_id in (reaped, released):
        job = store.get(job_id)
        assert job.status == "queued" and store.position(job.rq_id) is None  # in limbo

    started = time.monotonic()
    stack.start_worker(wait=False)
    stack.start_api()
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        limbo = (reaped, released, forgotten)
        jobs = {job_id: poll(client, job_id, timeout=RECOVERY_BOUND) for job_id in limbo}
    assert time.monotonic() - started < RECOVERY_BOUND
    assert all(job["status"] == "finished" for job in jobs.values()), jobs
    assert jobs[reaped]["attempt"] == 2 and jobs[released]["attempt"] == 1
    assert jobs[forgotten]["attempt"] == 2
    reason = store.redis.hget(store.job_key(forgotten), "retry_reason")
    assert reason == b"worker live-worker lost track of the job"
    assert store.redis.zcard(store.queued_key) == 0
