"""How many unfinished jobs (queued or running) each client has: the per-client queue limit.

The queue limit alone lets one client fill the whole queue (and Redis, with every job's inputs). Each
client's jobs are kept in a sorted set `client:<hash>:jobs`; ended or expired ones are dropped when the
set is counted (one script), so nothing else has to maintain it. Counting and adding (in the job's
creating transaction) are two steps, so concurrent submissions of one client can pass the limit by at
most the API's upload slots.
"""

from __future__ import annotations

import hashlib
import time

import redis

from jobs.store import JobStore

# unfinished(client jobs) [job key prefix] -> how many of the client's jobs are queued or running; the
#   others are dropped from the set. The job keys are built from the prefix (standalone Redis, as RQ needs).
UNFINISHED_SCRIPT = """
local count = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local status = redis.call('HGET', ARGV[1] .. id, 'status')
  if status == 'queued' or status == 'started' then
    count = count + 1
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return count
"""


class ClientQuota:
    def __init__(self, store: JobStore, limit: int):
        self.store, self.limit = store, limit
        self._unfinished = store.redis.register_script(UNFINISHED_SCRIPT)

    def key(self, client: str) -> str:
        return f"{self.store.prefix}client:{hashlib.sha256(client.encode()).hexdigest()[:24]}:jobs"

    def unfinished(self, client: str) -> int:
        """The client's queued or running jobs (forgetting those that ended), in one round trip."""
        return int(self._unfinished(keys=[self.key(client)], args=[self.store.job_key("")]))

    def full(self, client: str) -> bool:
        return self.unfinished(client) >= self.limit

    def add(self, client: str, job_id: str, pipe: redis.client.Pipeline) -> None:
        """Count a new job, in the transaction that creates it; the set lives as long as an unfinished
        job can."""
        key = self.key(client)
        pipe.zadd(key, {job_id: time.time()})
        pipe.expire(key, self.store.settings.input_ttl + int(self.store.settings.job_timeout))
