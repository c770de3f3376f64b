"""The FastAPI application: `create_app(settings)` wires the routes to one Redis job store.

The API never imports torch: it validates requests, stores inputs and reads job state, while workers
(`bootpig worker`) do the generation. All state lives in Redis, so API processes can restart or be
replicated without losing jobs.
"""

from __future__ import annotations

import logging
import secrets
import threading
from contextlib import asynccontextmanager
from pathlib import Path

import redis
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.auth import authenticator
from app.docs import install_docs
from app.errors import APIError, error_response, install_error_handlers
from app.images import ImageLimits, check_image
from app.metrics import build_registry
from app.schemas import IMAGES_FIELD, JobView, form_schema, job_view, parse_generation_fields
from app.security import SecurityHeaders, content_security_policy
from app.uploads import UploadLimits, UploadSlots, read_multipart
from bootpig.settings import Settings, get_settings
from model.config import DEMO_WARNING, MAX_REFERENCES, RANDOM_SEED_RANGE
from worker.store import FINAL_STATES, IdempotencyConflict, JobStore, connect, request_fingerprint

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class Reaper(threading.Thread):
    """Recovers jobs of dead workers and lost queue entries even when no worker is alive to do it."""

    def __init__(self, store: JobStore, interval: float):
        super().__init__(name="bootpig-reaper", daemon=True)
        self.store, self.interval = store, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                for job_id, outcome in self.store.sweep():
                    log.warning("job %s recovered: %s", job_id, outcome)
            except Exception:  # noqa: BLE001 - Redis may be briefly away; try again next round
                log.warning("reaper round failed", exc_info=True)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    store = JobStore(connect(settings), settings)
    registry, submissions = build_registry(store)
    owner_of_request = authenticator(settings)
    limits = UploadLimits.from_settings(settings, IMAGES_FIELD, MAX_REFERENCES)
    upload_slots = UploadSlots(settings.max_concurrent_uploads, settings.upload_queue_timeout)
    image_limits = ImageLimits.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        reaper = Reaper(store, settings.heartbeat_interval)
        reaper.start()
        yield
        reaper.stopped.set()

    app = FastAPI(
        title="BootPIG",
        description="Zero-shot personalized image generation: upload photos of an object, describe a scene, "
        "get images of that object in it. Jobs run on GPU workers behind a Redis queue.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    pages = [*install_docs(app), (STATIC / "index.html").read_text()]
    app.add_middleware(SecurityHeaders, csp=content_security_policy(pages))

    @app.exception_handler(redis.exceptions.RedisError)
    async def _redis_down(request: Request, exc: redis.exceptions.RedisError) -> JSONResponse:
        log.error("Redis error on %s: %s", request.url.path, exc)
        return error_response(503, "queue_unavailable", "the job queue is unavailable; retry shortly")

    def load_job(job_id: str, owner: str) -> dict:
        record = store.get(job_id) if len(job_id) <= 64 else None
        if record is None or record["owner"] != owner:  # another client's job is indistinguishable
            raise APIError(404, "not_found", "no such job", "id")
        return record

    def view(record: dict) -> JobView:
        position = store.position(record.get("rq_id")) if record["status"] == "queued" else None
        return job_view(record, position)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.post(
        "/generate",
        status_code=202,
        response_model=JobView,
        summary="Submit a generation job",
        openapi_extra={
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form_schema()}}}
        },
        responses={
            200: {"description": "Replay of an earlier submission with the same Idempotency-Key"},
            401: {"description": "Missing or invalid API key"},
            413: {"description": "A file, the pixel count or the request is over its limit"},
            415: {"description": "Not multipart, not an image, or not JPEG/PNG/WebP"},
            422: {
                "description": "A field is missing, malformed or out of range (`error.field` names it), "
                "or the Idempotency-Key was already used for a different request"
            },
            429: {"description": "The queue is full"},
        },
    )
    async def submit(request: Request, owner: str = Depends(owner_of_request)) -> Response:
        """Upload 1-8 reference photos and the generation parameters; answers 202 with the job.

        Send `Idempotency-Key: <any string>` to make retries safe: the same key (per client) with the same
        request returns the same job instead of creating another; the same key with other parameters or
        images is rejected (422 `idempotency_key_reused`).
        """
        if await run_in_threadpool(store.queue_length) >= settings.max_queued_jobs:
            submissions.labels("queue_full").inc()
            raise APIError(429, "queue_full", "too many jobs are waiting; retry later")
        async with upload_slots.slot():
            return await accept(request, owner)

    async def accept(request: Request, owner: str) -> Response:
        try:
            form = await read_multipart(request, limits)
        except APIError:
            submissions.labels("rejected").inc()
            raise
        try:
            if not form.files:
                raise APIError(422, "no_images", "at least one reference image is required", IMAGES_FIELD)
            params = parse_generation_fields(form.fields, settings.segment.value)
            for index, upload in enumerate(form.files):
                await run_in_threadpool(check_image, upload.file, index, image_limits)
            images = [upload.data for upload in form.files]
        except APIError:
            submissions.labels("rejected").inc()
            raise
        finally:
            form.close()
        idempotency_key = request.headers.get("idempotency-key")
        fingerprint = request_fingerprint(params, images) if idempotency_key is not None else None
        if params.get("seed") is None:  # chosen here so the 202 answer already shows it
            params["seed"] = secrets.randbelow(RANDOM_SEED_RANGE)
        try:
            record, created = await run_in_threadpool(
                store.create, owner, params, images, idempotency_key, fingerprint
            )
        except IdempotencyConflict as exc:
            submissions.labels("rejected").inc()
            message = f"{exc}; use a new key"
            raise APIError(422, "idempotency_key_reused", message, IDEMPOTENCY_HEADER) from None
        submissions.labels("accepted" if created else "replayed").inc()
        body = view(record).model_dump(mode="json")
        headers = {"Location": f"/jobs/{record['id']}"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(body, status_code=202 if created else 200, headers=headers)

    @app.get("/jobs/{job_id}", response_model=JobView, responses={404: {"description": "Unknown job"}})
    def get_job(job_id: str, owner: str = Depends(owner_of_request)) -> JobView:
        """Status, queue position, progress, timings, parameters and (when finished) image URLs."""
        return view(load_job(job_id, owner))

    @app.get(
        "/jobs/{job_id}/images/{n}",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 404: {"description": "Unknown job or image"}},
    )
    def get_image(job_id: str, n: int, owner: str = Depends(owner_of_request)) -> Response:
        """The n-th result image (0-based) of a finished job."""
        record = load_job(job_id, owner)
        data = store.image(job_id, n) if record["status"] == "finished" and n >= 0 else None
        if data is None:
            raise APIError(404, "not_found", f"job {job_id} has no image {n}", "n")
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.delete(
        "/jobs/{job_id}",
        status_code=202,
        response_model=JobView,
        responses={404: {"description": "Unknown job"}, 409: {"description": "The job already ended"}},
    )
    def cancel_job(job_id: str, owner: str = Depends(owner_of_request)) -> JobView:
        """Cancel a queued job now, or a running one at its next denoising step."""
        record = load_job(job_id, owner)
        if record["status"] in {state.value for state in FINAL_STATES}:
            raise APIError(409, "already_ended", f"the job already ended ({record['status']})", "id")
        store.cancel(job_id)
        return view(load_job(job_id, owner))

    @app.get("/healthz", summary="The API process is alive")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="Redis answers and a worker with its model loaded is alive")
    def readyz() -> JSONResponse:
        try:
            store.redis.ping()
            workers = store.live_workers()
        except redis.exceptions.RedisError:
            return JSONResponse({"ready": False, "redis": False, "workers": []}, status_code=503)
        loaded = [w for w in workers if w.get("model_loaded")]
        body = {
            "ready": bool(loaded),
            "redis": True,
            "workers": [
                {key: w.get(key) for key in ("name", "host", "model", "checkpoint", "demo", "device", "job")}
                for w in workers
            ],
            "models": sorted({w.get("model") or "" for w in loaded}),
            "demo": any(w.get("demo") for w in loaded),
            "queue_depth": store.queue_length(),
        }
        if body["demo"]:
            body["warning"] = DEMO_WARNING
        if not loaded:
            body["reason"] = "no live worker with a loaded model"
        return JSONResponse(body, status_code=200 if loaded else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
