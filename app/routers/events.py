"""Live progress: `GET /jobs/{id}/events`, Server-Sent Events until the job ends.

Each event carries the whole job (as GET /jobs/{id} shows it), named after what changed: `status`
(queued/started/... and at the start), `progress` (a denoising step) and finally `finished`, `failed`
or `canceled` (with the image URLs), after which the stream ends. Waiting happens on the job's Redis
stream with the asyncio client (no thread held per follower), so any API replica can serve a follower
whatever process changes the job; see `jobs.events`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.auth import OwnedJobDep
from app.deps import AsyncRedisDep, StoreDep
from app.routers.jobs import view
from jobs.events import events_key, latest_event_id, wait_for_events
from jobs.record import FINAL_STATES

KEEPALIVE_SECONDS = 15.0  # a comment line now and then keeps proxies from closing a quiet stream
ENDED = {state.value for state in FINAL_STATES}

router = APIRouter(tags=["jobs"])


def sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    summary="Follow a job live (Server-Sent Events)",
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "A stream of `event: <status|progress|finished|failed|canceled>` with "
            "`data: <the job as JSON>`, ending after the final state.",
        },
        404: {"description": "Unknown job"},
    },
)
async def job_events(request: Request, record: OwnedJobDep, store: StoreDep, aredis: AsyncRedisDep):
    key = events_key(store.prefix, record.id)

    def read() -> dict | None:
        """The job as GET /jobs/{id} shows it (sync Redis calls: run in a thread, not the event loop)."""
        current = store.get(record.id)
        return None if current is None else view(store, current).model_dump(mode="json")

    async def stream() -> AsyncIterator[bytes]:
        after = await latest_event_id(aredis, key)  # noted before reading the job: nothing is missed
        job = await run_in_threadpool(read)
        last_sent = None
        quiet_since = time.monotonic()
        while job is not None:
            state = (job["status"], job["progress"]["step"], job["position"])
            if state != last_sent:
                kind = job["status"] if job["status"] in ENDED else "status"
                if last_sent is not None and job["status"] == last_sent[0] and job["status"] not in ENDED:
                    kind = "progress"
                yield sse(kind, job)
                last_sent, quiet_since = state, time.monotonic()
            if job["status"] in ENDED or await request.is_disconnected():
                return
            if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                yield b": keep-alive\n\n"
                quiet_since = time.monotonic()
            after = await wait_for_events(aredis, key, after)
            job = await run_in_threadpool(read)
        yield sse("gone", {"id": record.id, "error": "the job expired"})

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
