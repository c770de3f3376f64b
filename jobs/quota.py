"""How many unfinished jobs (queued or running) each client has: the per-client queue limit.

The queue limit alone lets one client fill the whole queue (and Redis, with every job's inputs). Each
client's jobs are kept in a sorted set `client:<hash>:jobs`; ended or expired ones are dropped when the
set is counted, so nothing else (no worker, no script) has to maintain it. Counting and adding are two
steps, so concurrent submissions of one client can pass the limit by at most the API's upload slots.
"""

from __future__ import annotations

import hashlib
import time

from jobs.record import JobStatus
from jobs.store import JobStore

UNFINISHED = {JobStatus.queued.value.encode(), JobStatus.started.value.encode()}


class ClientQuota:
    def __init__(self, store: JobStore, limit: int):
        self.store, self.limit = store, limit

    def key(self, client: str) -> str:
        return f"{self.store.prefix}client:{hashlib.sha256(client.encode()).hexdigest()[:24]}:jobs"

    def unfinished(self, client: str) -> int:
        """The client's queued or running jobs (forgetting those that ended)."""
        key = self.key(client)
        job_ids = self.store.redis.zrange(key, 0, -1)
        if not job_ids:
            return 0
        with self.store.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self.store.job_key(job_id.decode()), "status")
            statuses = pipe.execute()
        ended = [job_id for job_id, status in zip(job_ids, statuses, strict=True) if status not in UNFINISHED]
        if ended:
            self.store.redis.zrem(key, *ended)
        return len(job_ids) - len(ended)

    def full(self, client: str) -> bool:
        return self.unfinished(client) >= self.limit

    def add(self, client: str, job_id: str) -> None:
        """Count a new job; the set lives as long as an unfinished job can."""
        key = self.key(client)
        with self.store.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {job_id: time.time()})
            pipe.expire(key, self.store.settings.input_ttl + int(self.store.settings.job_timeout))
            pipe.execute()
