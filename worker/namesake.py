"""Let a worker restart at once under a fixed name (`BOOTPIG_WORKER_NAME`) after it was killed.

RQ refuses a name while its record `rq:worker:<name>` lives and is not marked dead, and a SIGKILLed
worker never marks it: the name stays blocked for RQ's worker TTL (7 minutes). Our own heartbeat says
within `heartbeat_ttl` whether that worker still lives, so the record of a dead namesake is marked dead
here and the new worker registers at once. A live namesake (a configuration mistake) is still refused.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time

from rq import Worker

from jobs.store import JobStore

log = logging.getLogger(__name__)


def _process_gone(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def namesake_is_dead(store: JobStore, name: str) -> bool:
    """Wait (at most `heartbeat_ttl`) until the last heartbeat under `name` proves its worker dead."""
    deadline = time.monotonic() + store.settings.heartbeat_ttl + store.settings.heartbeat_interval
    while True:
        raw = store.redis.get(store.worker_key(name))
        if raw is None:
            return True  # silent for heartbeat_ttl
        beat = json.loads(raw)
        if beat.get("host") == socket.gethostname() and _process_gone(beat.get("pid")):
            return True  # same machine, and its process is gone
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def release_dead_namesake(store: JobStore, rq_worker: Worker) -> None:
    """Mark RQ's record of a dead worker of the same name dead, so `rq_worker` may register."""
    connection = rq_worker.connection
    if not connection.exists(rq_worker.key) or connection.hexists(rq_worker.key, "death"):
        return
    if not namesake_is_dead(store, rq_worker.name):
        return  # RQ refuses the name: another live worker uses it
    log.warning(
        "worker %s: the last worker of this name died without unregistering; taking over", rq_worker.name
    )
    namesake = Worker.find_by_key(rq_worker.key, connection=connection, serializer=rq_worker.serializer)
    if namesake is not None:
        namesake.register_death()
