"""Job events in a Redis stream per job: how a client following `GET /jobs/{id}/events` hears of changes.

Why a stream and not pub/sub: an API replica that starts following a job a moment late still sees what
was added since it read the job (it reads on from the entry id it noted first), and nothing depends on
which replica the worker's message went through. The stream only *wakes* followers: they then read the
job record, which stays the one truth, so a change that publishes nothing (a reaper retrying a dead
worker's job) still reaches them at the next `EVENT_POLL_SECONDS` wake-up.

Key: `<prefix>job:<id>:events`, capped at `MAX_EVENTS` entries, expiring with the job.
"""

from __future__ import annotations

import json
from typing import Any

import redis
import redis.asyncio

MAX_EVENTS = 100
EVENT_POLL_SECONDS = 1.0  # followers re-read the job at least this often, events or not


def events_key(prefix: str, job_id: str) -> str:
    return f"{prefix}job:{job_id}:events"


class JobEvents:
    """The publishing side, used by the worker (status, every denoising step) and the API (cancel)."""

    def __init__(self, connection: redis.Redis, prefix: str, ttl: int):
        self.redis, self.prefix, self.ttl = connection, prefix, ttl

    def publish(self, job_id: str, kind: str, **data: Any) -> None:
        """Add one event; never raises (a lost event only delays followers until their next poll)."""
        key = events_key(self.prefix, job_id)
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(key, {"type": kind, "data": json.dumps(data)}, maxlen=MAX_EVENTS, approximate=True)
                pipe.expire(key, self.ttl)
                pipe.execute()
        except redis.exceptions.RedisError:
            pass


async def latest_event_id(connection: redis.asyncio.Redis, key: str) -> str:
    """Id of the newest entry ("0-0" when none): following from it misses nothing that comes after."""
    newest = await connection.xrevrange(key, count=1)
    if not newest:
        return "0-0"
    entry_id = newest[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


async def wait_for_events(connection: redis.asyncio.Redis, key: str, after: str) -> str:
    """Block until an entry newer than `after` arrives or `EVENT_POLL_SECONDS` pass; the new last id."""
    answer = await connection.xread({key: after}, block=int(EVENT_POLL_SECONDS * 1000), count=MAX_EVENTS)
    if not answer:
        return after
    entry_id = answer[0][1][-1][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
