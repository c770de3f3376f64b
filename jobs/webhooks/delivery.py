"""Webhook deliveries: a queue in Redis, served by a thread in every worker and API process.

Why not from the request thread or the worker's job loop: a delivery may need minutes of retries, and
must survive the process that ended the job (API restart, worker killed). Here everything is state in
Redis, so any live process continues where another stopped; claims are atomic leases, so one delivery
runs in one place at a time (a process dying mid-attempt only delays it by its lease: at-least-once,
receivers deduplicate with `X-BootPIG-Delivery`). No extra process to deploy or forget.

Jobs reach a final state in several places (worker, cancel, reaper); instead of hooking each, a job with
a webhook is *watched* and each round arms the webhooks of watched jobs that have ended.

Keys (under the key prefix):
  webhooks:watch           set of job ids whose webhook waits for the job to end
  webhooks:due             sorted set: job id -> when its next attempt is due (or its claim lapses)
  job:<id>:webhook         hash: url, state (waiting|pending|delivered|failed), attempts, delivery id,
                           event, body
  job:<id>:webhook:log     list of JSON attempts: attempt, at, status_code, error, seconds
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import redis

from bootpig.settings import Settings
from jobs.webhooks.guard import UnsafeWebhook, check_webhook_url, pinned
from jobs.webhooks.signing import signed_headers

log = logging.getLogger(__name__)
CLAIM_BATCH = 20
ENDED = ("finished", "failed", "canceled")

# arm(webhook, watch, due) [job id, now, delivery id, event, body, ttl] -> 1 when this call armed it
_ARM = """
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'pending', 'delivery', ARGV[3], 'event', ARGV[4], 'body', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""

# claim(due) [job id, now, lease until] -> 1 when the attempt is ours (it was due and nobody holds it)
_CLAIM = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""

# A job as its webhook reports it: (job status, the job as GET /jobs/{id} shows it), or None when the job
# no longer exists.
PayloadSource = Callable[[str], tuple[str, dict[str, Any]] | None]


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class WebhookQueue:
    """All Redis reads and writes of webhook deliveries."""

    def __init__(self, connection: redis.Redis, settings: Settings):
        self.redis, self.settings, self.prefix = connection, settings, settings.key_prefix
        self._arm = connection.register_script(_ARM)
        self._claim = connection.register_script(_CLAIM)

    def key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}:webhook"

    def log_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}:webhook:log"

    @property
    def watch_key(self) -> str:
        return f"{self.prefix}webhooks:watch"

    @property
    def due_key(self) -> str:
        return f"{self.prefix}webhooks:due"

    def register(
        self, job_id: str, url: str, base_url: str = "", pipe: redis.client.Pipeline | None = None
    ) -> None:
        """Remember the webhook of a new job (call it in the pipeline that creates the job).

        `base_url` (how the client reached the API) makes the payload's image URLs absolute."""
        target = pipe if pipe is not None else self.redis
        mapping = {"url": url, "base_url": base_url, "state": "waiting", "attempts": 0}
        target.hset(self.key(job_id), mapping=mapping)
        target.expire(self.key(job_id), self.settings.input_ttl + self.settings.result_ttl)
        target.sadd(self.watch_key, job_id)

    def watched(self) -> list[str]:
        return [_text(job_id) for job_id in self.redis.smembers(self.watch_key)]

    def forget(self, job_id: str) -> None:
        self.redis.srem(self.watch_key, job_id)

    def arm(self, job_id: str, event: str, body: bytes) -> bool:
        keys = [self.key(job_id), self.watch_key, self.due_key]
        args = [job_id, time.time(), secrets.token_hex(16), event, body, self.settings.result_ttl]
        return bool(self._arm(keys=keys, args=args))

    def claim_due(self, lease: float) -> list[str]:
        now = time.time()
        claimed = []
        for raw in self.redis.zrangebyscore(self.due_key, "-inf", now, start=0, num=CLAIM_BATCH):
            job_id = _text(raw)
            if self._claim(keys=[self.due_key], args=[job_id, now, now + lease]):
                claimed.append(job_id)
        return claimed

    def delivery(self, job_id: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in self.redis.hgetall(self.key(job_id)).items()}

    def record(self, job_id: str, attempt: dict[str, Any], state: str, next_at: float | None) -> None:
        """Log one attempt and set what happens next: another try at `next_at`, or the final state."""
        ttl = self.settings.result_ttl
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self.log_key(job_id), json.dumps(attempt))
            pipe.expire(self.log_key(job_id), ttl)
            pipe.hset(self.key(job_id), mapping={"state": state, "attempts": attempt["attempt"]})
            if next_at is None:
                pipe.zrem(self.due_key, job_id)
            else:
                pipe.zadd(self.due_key, {job_id: next_at})
            pipe.execute()

    def status(self, job_id: str) -> dict[str, Any] | None:
        return webhook_status(self.redis, self.prefix, job_id)


def webhook_status(connection: redis.Redis, prefix: str, job_id: str) -> dict[str, Any] | None:
    """What a client sees: url, state and every attempt so far (None when the job has no webhook)."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.hmget(f"{prefix}job:{job_id}:webhook", "url", "state")
        pipe.lrange(f"{prefix}job:{job_id}:webhook:log", 0, -1)
        (url, state), attempts = pipe.execute()
    if url is None:
        return None
    return {"url": _text(url), "state": _text(state), "attempts": [json.loads(a) for a in attempts]}


def webhook_body(job: dict[str, Any], base_url: str) -> bytes:
    """The delivery's JSON: the job as the API shows it, its URLs made absolute when the base is known."""
    base = base_url.rstrip("/")
    if base:
        job = job | {
            "images": [base + url for url in job.get("images", [])],
            "links": {name: base + url for name, url in job.get("links", {}).items()},
        }
    return json.dumps(job, separators=(",", ":")).encode()


class WebhookDispatcher(threading.Thread):
    """Every `interval`: arm the webhooks of watched jobs that ended, then deliver what is due."""

    def __init__(self, queue: WebhookQueue, payload: PayloadSource, interval: float = 0.5):
        super().__init__(name="bootpig-webhooks", daemon=True)
        self.queue, self.payload, self.interval = queue, payload, interval
        self.settings = queue.settings
        self.stopped = threading.Event()
        self.http = httpx.Client(timeout=self.settings.webhook_timeout, follow_redirects=False)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - Redis may be briefly away; a round must not kill the thread
                log.warning("webhook round failed; trying again in %g s", self.interval, exc_info=True)
        self.http.close()

    def stop(self) -> None:
        self.stopped.set()

    def run_once(self) -> int:
        """One round; returns the number of attempts made (for tests and logs)."""
        self.arm_ended()
        lease = self.settings.webhook_timeout + 30
        attempts = 0
        for job_id in self.queue.claim_due(lease):
            if self.stopped.is_set():
                break
            self.attempt(job_id)
            attempts += 1
        return attempts

    def arm_ended(self) -> None:
        for job_id in self.queue.watched():
            found = self.payload(job_id)
            if found is None:
                self.queue.forget(job_id)  # the job expired before it ended; nothing to tell
                continue
            status, job = found
            if status in ENDED:
                base_url = _text(self.queue.redis.hget(self.queue.key(job_id), "base_url")) or ""
                self.queue.arm(job_id, f"job.{status}", webhook_body(job, base_url))

    def attempt(self, job_id: str) -> None:
        delivery = self.queue.delivery(job_id)
        if delivery.get("state") != "pending":  # expired, or already settled by another process
            self.queue.redis.zrem(self.queue.due_key, job_id)
            return
        number = int(delivery.get("attempts") or 0) + 1
        body = (delivery.get("body") or "").encode()
        started = time.time()
        outcome: dict[str, Any] = {"attempt": number, "at": started, "status_code": None, "error": None}
        retry = True
        try:
            checked = check_webhook_url(delivery["url"], self.settings.webhook_allow_hosts)
            target, host, extensions = pinned(checked)
            secret = self.settings.webhook_secret or ""
            headers = signed_headers(secret, body, delivery["delivery"], delivery["event"]) | host
            response = self.http.post(target, content=body, headers=headers, extensions=extensions)
            outcome["status_code"] = response.status_code
            if not response.is_success:
                outcome["error"] = f"the receiver answered HTTP {response.status_code}"
        except UnsafeWebhook as exc:
            outcome["error"], retry = str(exc), False  # the address is refused now; retrying cannot help
        except httpx.HTTPError as exc:
            outcome["error"] = f"{type(exc).__name__}: {exc}"[:300]
        outcome["seconds"] = round(time.time() - started, 4)
        if outcome["error"] is None:
            self.queue.record(job_id, outcome, "delivered", None)
        elif retry and number < self.settings.webhook_max_attempts:
            delay = self.settings.webhook_retry_delay * 2 ** (number - 1)
            self.queue.record(job_id, outcome, "pending", time.time() + delay)
        else:
            self.queue.record(job_id, outcome, "failed", None)
            log.warning("webhook of job %s given up after %d attempts: %s", job_id, number, outcome["error"])
