"""Jobs in Redis: the one record that the API, the workers and the reaper all read and write.

Why a record of our own next to RQ's: RQ moves job ids between lists, but the states users see
(queued, started, finished, failed, canceled), progress, cancellation flags, worker ownership and retry
counts must change atomically and survive a dead worker. So each job is one Redis hash (its typed form:
`jobs.record.JobRecord`) changed only by the Lua scripts of `jobs.scripts`, and RQ (with the JSON
serializer: no pickles) only carries `(job_id, attempt)` to a worker.
Uploaded images and result PNGs are plain byte strings under their own keys with a TTL.

Keys (all under `settings.key_prefix`):
  job:<id>             hash: status, owner, params, attempt, worker, step/total, timings, error
  job:<id>:input:<i>   reference image bytes (expire after `input_ttl`, deleted when the job ends)
  job:<id>:image:<n>   result PNG bytes (expire after `result_ttl`)
  running              set of job ids in state `started` (what the reaper scans)
  queued               sorted set: job id -> when it was last known to wait in RQ's queue (orphan scan)
  worker:<name>        JSON heartbeat of a live worker, expires after `heartbeat_ttl`
  idem:<owner>:<hash>  "<job id> <request fingerprint>" of an Idempotency-Key
  stats, hist:<name>   counters and histograms for /metrics, shared by every process
"""

from __future__ import annotations

import bisect
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import Encoder, PythonRespSerializer
from redis.driver_info import DriverInfo
from redis.retry import Retry
from rq import Queue
from rq.serializers import JSONSerializer

from bootpig.settings import Settings
from jobs import scripts
from jobs.record import JobRecord, JobStatus, as_text

RUN_JOB = "worker.runner.run_job"
# Upper bounds (seconds) of the histogram buckets exported on /metrics.
JOB_SECONDS_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
STEP_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)
HISTOGRAMS = {"job_seconds": JOB_SECONDS_BUCKETS, "step_seconds": STEP_SECONDS_BUCKETS}
RQ_TIMEOUT_GRACE = 60  # RQ's own SIGALRM timeout is a backstop behind the cooperative per-step one
IDEMPOTENCY_WAIT = 2.0
# What each connection reports to CLIENT SETINFO, read once: by default redis-py looks its own version up in
# the installed package metadata for every new connection (a burst of requests opens many at once).
DRIVER_INFO = DriverInfo(name="redis-py", lib_version=redis.__version__)
PACK_BUFFER_CUTOFF = 6000  # values longer than this are sent as their own buffer (redis-py's default)


class IdempotencyConflict(ValueError):
    """An Idempotency-Key already used for a different request (other parameters or images)."""


def request_fingerprint(params: dict[str, Any], images: list[bytes]) -> str:
    """What makes two submissions "the same request": the normalized parameters and the image bytes.

    Take it before the API picks a random seed, so a retry that leaves the seed out still matches.
    """
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode())
    for data in images:
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


def new_job_id() -> str:
    """128 random bits: ids cannot be guessed or enumerated."""
    return secrets.token_hex(16)


def connect(settings: Settings, timeout: float = 30.0, retries: int | None = None) -> redis.Redis:
    """Bytes-mode client (RQ needs it) with short timeouts so a dead Redis fails fast.

    The API passes `settings.redis_request_timeout` and one retry: a request must get its 503 in seconds,
    not wait out redis-py's default retries (with backoff) of a long timeout while a hung Redis holds its
    thread. Workers keep redis-py's retries, which ride out a Redis restart."""
    options = {} if retries is None else {"retry": Retry(NoBackoff(), retries)}
    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=min(5.0, timeout),
        socket_timeout=timeout,
        health_check_interval=30,
        command_packer=zero_copy_packer(),
        driver_info=DRIVER_INFO,
        **options,
    )


def zero_copy_packer() -> PythonRespSerializer:
    """redis-py's pure-Python command packer, which sends large values (uploads, result images) as they
    are; with hiredis installed redis-py would pick hiredis's packer, which copies them (measured: 885 µs
    to pack three 200 KB images against 3 µs here, the largest single cost of a submission). Replies are
    still parsed by hiredis."""
    return PythonRespSerializer(PACK_BUFFER_CUTOFF, Encoder("utf-8", "strict", False).encode)


def _text(value: bytes | str | None) -> str | None:
    return None if value is None else as_text(value)


def _new_rq_id(job_id: str) -> str:
    """A fresh RQ id per enqueue: a retried job never reuses RQ's record of an earlier run."""
    return f"{job_id}-{secrets.token_hex(4)}"


def _forgot(beat: dict[str, Any], job_id: str, started_at: str | None) -> bool:
    """True when a live worker's heartbeat proves it is no longer running `job_id`.

    The worker sets its current job before claiming one and clears it after the outcome is stored, and
    its heartbeat reads the time (`beat_at`) before the current job; so a beat later than the job's
    `started_at` (both from the worker's own clock) that names another job means this run is over."""
    beat_at = beat.get("beat_at")
    if not isinstance(beat_at, int | float) or not started_at:
        return False
    return beat_at > float(started_at) and beat.get("job") != job_id


class JobStore:
    """All reads and writes of job state; every state change is one atomic script call."""

    def __init__(self, connection: redis.Redis, settings: Settings):
        self.redis = connection
        self.settings = settings
        self.prefix = settings.key_prefix
        self.queue = Queue(settings.queue_name, connection=connection, serializer=JSONSerializer)
        self._claim = connection.register_script(scripts.CLAIM)
        self._finish = connection.register_script(scripts.FINISH)
        self._cancel = connection.register_script(scripts.CANCEL)
        self._reap = connection.register_script(scripts.REAP)
        self._release = connection.register_script(scripts.RELEASE)
        self._adopt = connection.register_script(scripts.ADOPT)

    # ----------------------------------------------------------------- keys
    def job_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def input_key(self, job_id: str, index: int) -> str:
        return f"{self.prefix}job:{job_id}:input:{index}"

    def image_key(self, job_id: str, index: int) -> str:
        return f"{self.prefix}job:{job_id}:image:{index}"

    @property
    def running_key(self) -> str:
        return f"{self.prefix}running"

    @property
    def queued_key(self) -> str:
        return f"{self.prefix}queued"

    def worker_key(self, name: str) -> str:
        return f"{self.prefix}worker:{name}"

    def _idempotency_key(self, owner: str, key: str) -> str:
        return f"{self.prefix}idem:{owner}:{hashlib.sha256(key.encode()).hexdigest()}"

    # ----------------------------------------------------------------- API side
    def create(
        self,
        owner: str,
        params: dict[str, Any],
        images: list[bytes],
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
        fields: dict[str, Any] | None = None,
        also: Callable[[redis.client.Pipeline, str], None] | None = None,
    ) -> tuple[JobRecord, bool]:
        """Store a job and enqueue it; with an Idempotency-Key already used, return that job instead.

        `fingerprint` (see `request_fingerprint`) is kept with the key: the same key sent with a different
        request raises `IdempotencyConflict` instead of silently answering with the other request's job.
        `fields` are further JobRecord fields (subject_id, webhook); `also(pipe, job_id)` adds writes that
        must land atomically with the job (a webhook's registration).
        """
        job_id = new_job_id()
        if idempotency_key is not None:
            fingerprint = fingerprint or request_fingerprint(params, images)
            slot = self._idempotency_key(owner, idempotency_key)
            claim = f"{job_id} {fingerprint}"
            if not self.redis.set(slot, claim, nx=True, ex=self.settings.result_ttl):
                existing_id, _, existing_fingerprint = (_text(self.redis.get(slot)) or "").partition(" ")
                if existing_fingerprint and existing_fingerprint != fingerprint:
                    raise IdempotencyConflict("this Idempotency-Key was already used for a different request")
                record = self._wait_for_record(existing_id) if existing_id else None
                if record is not None:
                    return record, False
                self.redis.set(slot, claim, ex=self.settings.result_ttl)  # the first try never landed
        record = JobRecord(
            id=job_id,
            owner=owner,
            status=JobStatus.queued,
            params=params,
            num_inputs=len(images),
            total=params.get("steps", 0),
            created_at=time.time(),
            rq_id=_new_rq_id(job_id),
            **(fields or {}),
        )
        ttl = self.settings.input_ttl
        # One transaction, one round trip: inputs, record, indexes, the caller's writes and RQ's entry.
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.multi()  # explicit, as RQ expects of a pipeline it joins
            for index, data in enumerate(images):
                pipe.set(self.input_key(job_id, index), data, ex=ttl)
            pipe.hset(self.job_key(job_id), mapping=record.to_hash())
            pipe.expire(self.job_key(job_id), ttl)
            pipe.zadd(self.queued_key, {job_id: record.created_at})
            if also is not None:
                also(pipe, job_id)
            self._push(job_id, 1, record.rq_id, pipe)
            pipe.execute()
        return record, True

    def _wait_for_record(self, job_id: str) -> JobRecord | None:
        """A concurrent retry may see the key a moment before the job exists."""
        deadline = time.monotonic() + IDEMPOTENCY_WAIT
        while True:
            record = self.get(job_id)
            if record is not None or time.monotonic() > deadline:
                return record
            time.sleep(0.02)

    def enqueue(self, job_id: str, attempt: int) -> None:
        """Hand `(job_id, attempt)` to RQ under a fresh RQ id (a retried job never reuses RQ's record)."""
        rq_id = _new_rq_id(job_id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.multi()
            pipe.hset(self.job_key(job_id), "rq_id", rq_id)
            self._push(job_id, attempt, rq_id, pipe)
            pipe.execute()

    def _push(self, job_id: str, attempt: int, rq_id: str, pipe: redis.client.Pipeline | None = None) -> None:
        """RQ's entry for the job; with `pipe`, RQ adds its commands to the caller's transaction."""
        self.queue.enqueue_call(
            RUN_JOB,
            args=(job_id, attempt),
            job_id=rq_id,
            timeout=int(self.settings.job_timeout) + RQ_TIMEOUT_GRACE,
            ttl=self.settings.input_ttl,
            result_ttl=600,
            failure_ttl=self.settings.ended_job_ttl,
            description=f"bootpig job {job_id} attempt {attempt}",
            pipeline=pipe,
        )

    def get(self, job_id: str) -> JobRecord | None:
        raw = self.redis.hgetall(self.job_key(job_id))
        return JobRecord.from_hash(raw) if raw else None

    def position(self, rq_id: str | None) -> int | None:
        """1-based place in the queue (1: next to run), or None when not waiting in it."""
        index = self.redis.lpos(self.queue.key, rq_id) if rq_id else None
        return None if index is None else int(index) + 1

    def queue_length(self) -> int:
        return int(self.redis.llen(self.queue.key))

    def image(self, job_id: str, index: int) -> bytes | None:
        return self.redis.get(self.image_key(job_id, index))

    def cancel(self, job_id: str) -> str:
        """Cancel a queued job now, or flag a running one so its worker stops at the next step."""
        keys = [self.job_key(job_id), self.queued_key]
        outcome = _text(self._cancel(keys=keys, args=[time.time(), job_id]))
        if outcome == "canceled":
            rq_id = _text(self.redis.hget(self.job_key(job_id), "rq_id"))
            if rq_id:
                self.queue.remove(rq_id)
            self._end(job_id, JobStatus.canceled)
        return outcome

    # ----------------------------------------------------------------- worker side
    def claim(self, job_id: str, attempt: int, worker: str) -> str:
        return _text(
            self._claim(
                keys=[self.job_key(job_id), self.running_key, self.queued_key],
                args=[job_id, attempt, worker, time.time(), self._running_ttl],
            )
        )

    @property
    def _running_ttl(self) -> int:
        """Seconds a claimed job's record must live: its whole run, then `_end` sets `result_ttl`."""
        return max(self.settings.input_ttl, int(self.settings.job_timeout) + RQ_TIMEOUT_GRACE)

    def inputs(self, job_id: str, count: int) -> list[bytes | None]:
        return self.redis.mget([self.input_key(job_id, i) for i in range(count)])

    def progress(self, job_id: str, step: int, total: int) -> None:
        self.redis.hset(self.job_key(job_id), mapping={"step": step, "total": total})

    def cancel_requested(self, job_id: str) -> bool:
        return self.redis.hget(self.job_key(job_id), "cancel") == b"1"

    def set_fields(self, job_id: str, fields: dict[str, Any]) -> None:
        self.redis.hset(self.job_key(job_id), mapping=fields)

    def complete(
        self,
        job_id: str,
        attempt: int,
        worker: str,
        pngs: list[bytes],
        params: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> bool:
        """Store the images and mark the job finished, unless it was taken away from this worker.

        `extra`: further record fields the outcome sets (e.g. `reference_features`)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for index, png in enumerate(pngs):
                pipe.set(self.image_key(job_id, index), png, ex=self.settings.result_ttl)
            pipe.execute()
        fields = {
            "status": JobStatus.finished.value,
            "finished_at": time.time(),
            "num_images": len(pngs),
            "params": json.dumps(params),
            **(extra or {}),
        }
        if not self._finish_if_owner(job_id, attempt, worker, fields):
            self.redis.delete(*[self.image_key(job_id, i) for i in range(len(pngs))])
            return False
        self._end(job_id, JobStatus.finished)
        return True

    def fail(
        self, job_id: str, attempt: int, worker: str, message: str, status: JobStatus = JobStatus.failed
    ) -> bool:
        fields = {"status": status.value, "finished_at": time.time(), "error": message}
        if not self._finish_if_owner(job_id, attempt, worker, fields):
            return False
        self._end(job_id, status)
        return True

    def release(self, job_id: str, attempt: int, worker: str) -> str | None:
        """A worker forced to stop mid-job puts the job back in the queue (same attempt), or cancels it
        when the client asked for that meanwhile. Returns "released", "canceled" or None (not ours)."""
        outcome = _text(
            self._release(
                keys=[self.job_key(job_id), self.running_key, self.queued_key],
                args=[job_id, worker, time.time()],
            )
        )
        if outcome == "released":
            self.enqueue(job_id, attempt)
        elif outcome == "canceled":
            self._end(job_id, JobStatus.canceled)
        return outcome if outcome in ("released", "canceled") else None

    def _finish_if_owner(self, job_id: str, attempt: int, worker: str, fields: dict[str, Any]) -> bool:
        flat: list[Any] = [job_id, worker, attempt]
        for name, value in fields.items():
            flat += [name, value]
        return bool(self._finish(keys=[self.job_key(job_id), self.running_key], args=flat))

    def _end(self, job_id: str, status: JobStatus) -> None:
        """A job reached a final state: drop its inputs, keep its record for `result_ttl` (a failed or
        canceled one, which has no images to fetch, for the shorter `ended_job_ttl`), count it."""
        ttl = self.settings.result_ttl if status is JobStatus.finished else self.settings.ended_job_ttl
        with self.redis.pipeline(transaction=False) as pipe:
            count = self.redis.hget(self.job_key(job_id), "num_inputs")
            pipe.delete(*[self.input_key(job_id, i) for i in range(max(int(count or 0), 1))])
            pipe.expire(self.job_key(job_id), ttl)
            pipe.zrem(self.queued_key, job_id)
            pipe.hincrby(f"{self.prefix}stats", f"jobs_{status.value}", 1)
            pipe.execute()

    # ----------------------------------------------------------------- workers and faults
    def heartbeat(self, worker: str, info: dict[str, Any]) -> None:
        ttl_ms = int(self.settings.heartbeat_ttl * 1000)
        self.redis.set(self.worker_key(worker), json.dumps(info), px=ttl_ms)

    def forget_worker(self, worker: str) -> None:
        self.redis.delete(self.worker_key(worker))

    def live_workers(self) -> list[dict[str, Any]]:
        keys = list(self.redis.scan_iter(match=f"{self.prefix}worker:*", count=500))
        values = self.redis.mget(keys) if keys else []
        return [json.loads(v) for v in values if v]

    def sweep(self) -> list[tuple[str, str]]:
        """One round of fault recovery (every worker and API process runs it periodically)."""
        return self.reap() + self.recover_orphans()

    def reap(self) -> list[tuple[str, str]]:
        """Retry (or fail) running jobs that no live worker is running; safe to run from many processes.

        Two cases: the worker's heartbeat expired (killed, power loss), or the worker is alive but its
        heartbeat, taken after the job started, names another job or none (it lost the job, e.g. Redis
        failed while the outcome was stored)."""
        outcomes = []
        for raw_id in self.redis.smembers(self.running_key):
            job_id = _text(raw_id)
            worker, started_at = map(_text, self.redis.hmget(self.job_key(job_id), ["worker", "started_at"]))
            beat = self.redis.get(self.worker_key(worker)) if worker else None
            if beat is None:
                reason, run = f"worker {worker} stopped during the job", ""
            elif _forgot(json.loads(beat), job_id, started_at):
                reason, run = f"worker {worker} lost track of the job", started_at or ""
            else:
                continue
            message = (
                "the worker running this job stopped unexpectedly "
                f"{self.settings.max_attempts} time(s); giving up"
            )
            keys = [self.job_key(job_id), self.running_key, self.queued_key]
            args = [job_id, worker or "", self.settings.max_attempts, time.time(), message, reason, run]
            outcome = _text(self._reap(keys=keys, args=args))
            if outcome == "requeued":
                self.redis.hincrby(f"{self.prefix}stats", "jobs_retried", 1)
                self.enqueue(job_id, int(self.redis.hget(self.job_key(job_id), "attempt") or 0))
            elif outcome in ("failed", "canceled"):
                self._end(job_id, JobStatus(outcome))
            outcomes.append((job_id, outcome))
        return outcomes

    def recover_orphans(self) -> list[tuple[str, str]]:
        """Enqueue again queued jobs that are missing from RQ's queue for `heartbeat_ttl` (twice seen).

        A job sent back to the queue (reaped, released) gets its record changed, then its RQ entry; a
        process dying in between would leave it `queued` forever (a new job gets both in one
        transaction). Checking costs one LPOS per queued job and `heartbeat_ttl`."""
        now = time.time()
        grace = self.settings.heartbeat_ttl
        outcomes = []
        for raw_id in self.redis.zrangebyscore(self.queued_key, "-inf", now - grace, start=0, num=500):
            job_id = _text(raw_id)
            rq_id = _new_rq_id(job_id)
            outcome = _text(
                self._adopt(
                    keys=[self.job_key(job_id), self.queued_key, self.queue.key],
                    args=[job_id, now, now - grace, rq_id],
                )
            )
            if outcome == "adopt":
                self._push(job_id, int(self.redis.hget(self.job_key(job_id), "attempt") or 1), rq_id)
                outcomes.append((job_id, "re-enqueued"))
        return outcomes

    # ----------------------------------------------------------------- metrics
    def observe(self, name: str, values: list[float]) -> None:
        """Add observations to a Redis histogram (bucket counts, sum, count) shared by all workers."""
        if not values:
            return
        bounds = HISTOGRAMS[name]
        key = f"{self.prefix}hist:{name}"
        with self.redis.pipeline(transaction=False) as pipe:
            for value in values:
                index = bisect.bisect_left(bounds, value)
                pipe.hincrby(key, str(bounds[index]) if index < len(bounds) else "+Inf", 1)
            pipe.hincrbyfloat(key, "sum", float(sum(values)))
            pipe.hincrby(key, "count", len(values))
            pipe.execute()

    def histogram(self, name: str) -> tuple[list[tuple[str, int]], float]:
        """Cumulative buckets as Prometheus wants them, and the sum."""
        raw = {_text(k): _text(v) for k, v in self.redis.hgetall(f"{self.prefix}hist:{name}").items()}
        buckets, running = [], 0
        for bound in [*map(str, HISTOGRAMS[name]), "+Inf"]:
            running += int(raw.get(bound, 0))
            buckets.append((bound, running))
        return buckets, float(raw.get("sum", 0.0))

    def stats(self) -> dict[str, int]:
        return {_text(k): int(v) for k, v in self.redis.hgetall(f"{self.prefix}stats").items()}
