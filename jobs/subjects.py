"""Subjects: an object's photos prepared once (cut out, on white, square) and reused by many jobs.

A subject is created by the API with the raw uploads and a "prepare" job for the workers (ahead of the
generation jobs in the queue: it is short and its user is waiting to check the cut-out). The worker
stores the prepared references as lossless WebP at the model's reference size (a few tens of KB each
instead of multi-MB photos) and drops the uploads. A job that names the subject gets copies of those
references as its inputs with `segment=none`, so it skips decoding, EXIF handling and segmentation, and
keeps working if the subject is deleted while the job waits.

Keys (under the key prefix), all expiring `subject_ttl` after creation or the last job that used it:
  subject:<id>              hash: id, owner, name, status (preparing|ready|failed), segment, counts, times
  subject:<id>:upload:<i>   raw uploads, until prepared
  subject:<id>:ref:<n>      prepared reference (lossless WebP)
  subjects:<owner>          sorted set of the owner's subject ids by creation time (listing)
"""

from __future__ import annotations

import secrets
import time
from enum import Enum
from typing import Any

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from bootpig.settings import Settings

PREPARE_SUBJECT = "worker.subjects.prepare_subject"
LIST_LIMIT = 200
PREPARE_GRACE = 60.0


class SubjectStatus(str, Enum):
    preparing = "preparing"
    ready = "ready"
    failed = "failed"


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class SubjectStore:
    """Every read and write of subjects."""

    def __init__(self, connection: redis.Redis, settings: Settings):
        self.redis, self.settings, self.prefix = connection, settings, settings.key_prefix
        self.queue = Queue(settings.queue_name, connection=connection, serializer=JSONSerializer)

    def key(self, subject_id: str) -> str:
        return f"{self.prefix}subject:{subject_id}"

    def upload_key(self, subject_id: str, index: int) -> str:
        return f"{self.prefix}subject:{subject_id}:upload:{index}"

    def reference_key(self, subject_id: str, index: int) -> str:
        return f"{self.prefix}subject:{subject_id}:ref:{index}"

    def owner_key(self, owner: str) -> str:
        return f"{self.prefix}subjects:{owner}"

    # ------------------------------------------------------------------ API side
    def create(self, owner: str, name: str | None, segment: str, uploads: list[bytes]) -> dict[str, Any]:
        subject_id = secrets.token_hex(16)
        now, ttl = time.time(), self.settings.subject_ttl
        with self.redis.pipeline(transaction=True) as pipe:
            for index, data in enumerate(uploads):
                pipe.set(self.upload_key(subject_id, index), data, ex=min(ttl, self.settings.input_ttl))
            pipe.hset(
                self.key(subject_id),
                mapping={
                    "id": subject_id,
                    "owner": owner,
                    "name": name or "",
                    "status": SubjectStatus.preparing.value,
                    "segment": segment,
                    "num_uploads": len(uploads),
                    "num_references": 0,
                    "created_at": now,
                    "last_used_at": now,
                },
            )
            pipe.expire(self.key(subject_id), ttl)
            pipe.zadd(self.owner_key(owner), {subject_id: now})
            pipe.expire(self.owner_key(owner), ttl)
            pipe.execute()
        self.queue.enqueue(
            PREPARE_SUBJECT,
            subject_id,
            job_id=f"subject-{subject_id}",
            at_front=True,
            job_timeout=int(self.settings.job_timeout),
            ttl=self.settings.input_ttl,
            result_ttl=600,
            failure_ttl=self.settings.result_ttl,
            description=f"bootpig subject {subject_id}",
        )
        return self.get(subject_id) or {}

    def get(self, subject_id: str) -> dict[str, Any] | None:
        if len(subject_id) > 64:
            return None
        raw = self.redis.hgetall(self.key(subject_id))
        if not raw:
            return None
        record: dict[str, Any] = {_text(k): _text(v) for k, v in raw.items()}
        for name in ("num_uploads", "num_references", "reference_size"):
            record[name] = int(record.get(name) or 0)
        for name in ("created_at", "last_used_at", "prepared_at"):
            record[name] = float(record[name]) if record.get(name) else None
        record["expires_in"] = max(0, self.redis.ttl(self.key(subject_id)))
        if record["status"] == SubjectStatus.preparing.value and time.time() > record["created_at"] + (
            self.preparation_deadline
        ):
            record["status"] = SubjectStatus.failed.value
            record["error"] = "the preparation did not finish (its worker may have stopped); create it again"
        return record

    @property
    def preparation_deadline(self) -> float:
        """Seconds after which a subject still `preparing` is reported failed: its prepare job waits at most
        for one running job (it is queued at the front) and then runs under the same time limit."""
        return 2 * self.settings.job_timeout + PREPARE_GRACE

    def list(self, owner: str) -> list[dict[str, Any]]:
        """The owner's subjects, newest first; ids whose subject expired are dropped on the way."""
        ids = [_text(i) for i in self.redis.zrevrange(self.owner_key(owner), 0, LIST_LIMIT - 1)]
        subjects, gone = [], []
        for subject_id in ids:
            record = self.get(subject_id)
            if record is None or record["owner"] != owner:
                gone.append(subject_id)
            else:
                subjects.append(record)
        if gone:
            self.redis.zrem(self.owner_key(owner), *gone)
        return subjects

    def delete(self, subject_id: str, owner: str, count: int) -> None:
        keys = [self.key(subject_id)]
        keys += [self.reference_key(subject_id, n) for n in range(count)]
        keys += [self.upload_key(subject_id, n) for n in range(count)]
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(*keys)
            pipe.zrem(self.owner_key(owner), subject_id)
            pipe.execute()

    def reference(self, subject_id: str, index: int) -> bytes | None:
        return self.redis.get(self.reference_key(subject_id, index))

    def references_for_job(self, subject: dict[str, Any]) -> list[bytes] | None:
        """The prepared references for a new job, restarting the subject's expiry (it is in use).

        None when they expired between reading the subject and now."""
        subject_id, ttl = subject["id"], self.settings.subject_ttl
        keys = [self.reference_key(subject_id, n) for n in range(subject["num_references"])]
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.mget(keys)
            for key in (*keys, self.key(subject_id), self.owner_key(subject["owner"])):
                pipe.expire(key, ttl)
            pipe.hset(self.key(subject_id), "last_used_at", time.time())
            blobs = pipe.execute()[0]
        return None if any(blob is None for blob in blobs) else blobs

    # ------------------------------------------------------------------ worker side
    def uploads(self, subject_id: str, count: int) -> list[bytes | None]:
        return self.redis.mget([self.upload_key(subject_id, i) for i in range(count)]) if count else []

    def store_references(self, subject_id: str, references: list[bytes], size: int, seconds: float) -> bool:
        """Save the prepared references and mark the subject ready; False if it was deleted meanwhile."""
        ttl = self.settings.subject_ttl
        if not self.redis.exists(self.key(subject_id)):
            return False
        with self.redis.pipeline(transaction=True) as pipe:
            for index, data in enumerate(references):
                pipe.set(self.reference_key(subject_id, index), data, ex=ttl)
            pipe.hset(
                self.key(subject_id),
                mapping={
                    "status": SubjectStatus.ready.value,
                    "num_references": len(references),
                    "reference_size": size,
                    "reference_bytes": sum(len(data) for data in references),
                    "prepare_seconds": round(seconds, 4),
                    "prepared_at": time.time(),
                },
            )
            pipe.expire(self.key(subject_id), ttl)  # also bounds a hash re-created by a racing delete
            pipe.delete(*[self.upload_key(subject_id, i) for i in range(len(references))])
            pipe.execute()
        return True

    def fail(self, subject_id: str, message: str, uploads: int) -> None:
        if not self.redis.exists(self.key(subject_id)):
            return
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key(subject_id), mapping={"status": SubjectStatus.failed.value, "error": message})
            pipe.expire(self.key(subject_id), self.settings.subject_ttl)
            pipe.delete(*[self.upload_key(subject_id, i) for i in range(uploads)])
            pipe.execute()
