"""Jobs: submit (validate, store, enqueue), poll, fetch result images, cancel."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from app.auth import CallerDep, OwnedJobDep, load_owned_job, load_owned_view
from app.deps import SettingsDep, StoreDep, SubjectsDep, SubmissionsDep, UploadSlotsDep, ViewsDep
from app.errors import APIError
from app.images import ImageLimits, stored_references
from app.job_sources import checked_webhook, require_one_source, split_job_fields, subject_references
from app.schemas import IMAGES_FIELD, JobView, form_schema, job_view, parse_generation_fields
from app.uploads import UPLOAD_RESPONSES, MultipartForm, UploadLimits, read_multipart
from bootpig.settings import Settings
from jobs.events import JobEvents
from jobs.quota import ClientQuota
from jobs.record import JobRecord
from jobs.store import IdempotencyConflict, JobStore, request_fingerprint
from jobs.subjects import SubjectStore
from jobs.views import JobViews
from jobs.webhooks.delivery import WebhookQueue, webhook_status
from model.config import MAX_REFERENCES, Segmenter, draw_seed

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_CHARS = 255

router = APIRouter()


def view(store: JobStore, record: JobRecord) -> JobView:
    position = store.position(record.rq_id) if record.status == "queued" else None
    webhook = webhook_status(store.redis, store.prefix, record.id) if record.webhook else None
    return job_view(record, position, webhook)


@router.post(
    "/generate",
    status_code=202,
    response_model=JobView,
    summary="Submit a generation job",
    description=f"Upload 1-{MAX_REFERENCES} reference photos and the generation parameters; answers 202 "
    "with the job.\n\nSend `Idempotency-Key: <any string>` to make retries safe: the same key (per client) "
    "with the same request returns the same job instead of creating another; the same key with other "
    "parameters or images is rejected (422 `idempotency_key_reused`).",
    openapi_extra={
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form_schema()}}}
    },
    responses={
        **UPLOAD_RESPONSES,
        200: {"description": "Replay of an earlier submission with the same Idempotency-Key"},
        404: {"description": "`subject_id` names no subject of the caller"},
        409: {"description": "The subject is not ready (`subject_not_ready`: still preparing, or failed)"},
        422: {
            "description": "A field is missing, malformed or out of range (`error.field` names it), both or "
            "neither of `images` and `subject_id`, a refused `webhook` (`unsafe_webhook`, "
            "`webhooks_disabled`), or the Idempotency-Key was already used for a different request"
        },
        429: {
            "description": "The queue is full, or this client has max_queued_jobs_per_client unfinished jobs"
        },
    },
)
async def submit(
    request: Request,
    owner: CallerDep,
    store: StoreDep,
    settings: SettingsDep,
    submissions: SubmissionsDep,
    subjects: SubjectsDep,
    slots: UploadSlotsDep,
) -> Response:
    caller = Caller(owner, quota_client(request, owner, settings), presented_idempotency_key(request))
    quota = ClientQuota(store, settings.max_queued_jobs_per_client)
    await run_in_threadpool(admit, store, settings, quota, caller.client, submissions)
    base_url = str(request.base_url)
    async with slots.slot():
        form = await read_form(request, settings, submissions)
        try:  # one thread-pool hop for all that blocks: image checks, subject, webhook, Redis
            record, created, answer = await run_in_threadpool(
                enqueue_submission, form, caller, base_url, store, quota, subjects, settings, submissions
            )
        finally:
            form.close()
    body = answer.model_dump(mode="json")
    headers = {"Location": f"/jobs/{record.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=202 if created else 200, headers=headers)


@dataclass(frozen=True)
class Caller:
    """Who submits: the owner of the job, whom the per-client limit counts, and their Idempotency-Key."""

    owner: str
    client: str
    idempotency_key: str | None


def enqueue_submission(
    form: MultipartForm,
    caller: Caller,
    base_url: str,
    store: JobStore,
    quota: ClientQuota,
    subjects: SubjectStore,
    settings: Settings,
    submissions,
) -> tuple[JobRecord, bool, JobView]:
    """Check the submission and create its job (or find the one its Idempotency-Key already made)."""
    try:
        job = checked_submission(form, settings, subjects, caller.owner)
    except APIError:
        submissions.labels("rejected").inc()
        raise
    images, params = job.images, job.params
    extra = {
        name: value for name, value in (("subject_id", job.subject_id), ("webhook", job.webhook)) if value
    }
    key = caller.idempotency_key
    fingerprint = request_fingerprint(params | extra, images) if key is not None else None
    webhooks = WebhookQueue(store.redis, settings) if job.webhook else None

    def with_the_job(pipe, job_id: str) -> None:
        """Writes that land in the job's creating transaction: the client's count, its webhook."""
        quota.add(caller.client, job_id, pipe)
        if webhooks is not None:
            webhooks.register(job_id, job.webhook, base_url, pipe)

    if params.get("seed") is None:  # chosen here so the 202 answer already shows it
        params["seed"] = draw_seed()
    try:
        record, created = store.create(caller.owner, params, images, key, fingerprint, extra, with_the_job)
    except IdempotencyConflict as exc:
        submissions.labels("rejected").inc()
        raise APIError(422, "idempotency_key_reused", f"{exc}; use a new key", IDEMPOTENCY_HEADER) from None
    submissions.labels("accepted" if created else "replayed").inc()
    return record, created, view(store, record)


def admit(store: JobStore, settings: Settings, quota: ClientQuota, client: str, submissions) -> None:
    """Refuse a submission before its upload is read: the queue is full, or the client has its limit of
    unfinished jobs. One call (one thread-pool hop) for both checks."""
    if store.queue_length() >= settings.max_queued_jobs:
        submissions.labels("queue_full").inc()
        raise APIError(429, "queue_full", "too many jobs are waiting; retry later")
    if quota.full(client):
        submissions.labels("client_limit").inc()
        message = f"this client already has {quota.limit} unfinished jobs; wait for one to end"
        raise APIError(429, "too_many_jobs", message)


def quota_client(request: Request, owner: str, settings: Settings) -> str:
    """Who the per-client job limit counts: the API key's owner, or the address when keys are off."""
    if settings.api_keys:
        return owner
    return f"address:{request.client.host if request.client else 'unknown'}"


def presented_idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header, or None without one; an empty or overlong key is a 422, not a key."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not 0 < len(key.strip()) <= MAX_IDEMPOTENCY_KEY_CHARS:
        message = f"{IDEMPOTENCY_HEADER} must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} characters (or left out)"
        raise APIError(422, "invalid", message, IDEMPOTENCY_HEADER)
    return key


@dataclass
class Submission:
    """What a checked POST /generate carries: stored references, parameters, and its optional extras."""

    images: list[bytes]
    params: dict
    subject_id: str | None
    webhook: str | None


async def read_form(request: Request, settings: Settings, submissions) -> MultipartForm:
    try:
        limits = UploadLimits.from_settings(settings, IMAGES_FIELD, MAX_REFERENCES)
        return await read_multipart(request, limits)
    except APIError:
        submissions.labels("rejected").inc()
        raise


def checked_submission(
    form: MultipartForm, settings: Settings, subjects: SubjectStore, owner: str
) -> Submission:
    """Checked images (uploaded, or a subject's prepared ones) and parameters (blocking: run in a thread)."""
    fields, subject_id, webhook = split_job_fields(form.fields)
    require_one_source(bool(form.files), subject_id)
    params = parse_generation_fields(fields, settings.segment.value)
    limits, side = ImageLimits.from_settings(settings), settings.stored_reference_side
    images = stored_references(form.files, limits, side)
    if subject_id:  # prepared once: no decoding or segmentation again
        images = subject_references(subjects, subject_id, owner)
        params["segment"] = Segmenter.none.value
    if webhook:
        webhook = checked_webhook(webhook, settings)
    return Submission(images, params, subject_id, webhook)


@router.get("/jobs/{job_id}", response_model=JobView, responses={404: {"description": "Unknown job"}})
async def get_job(job_id: str, views: ViewsDep, store: StoreDep, owner: CallerDep) -> JobView:
    """Status, queue position, progress, timings, parameters and (when finished) image URLs."""
    # `async` with one explicit hop: a plain `def` route would cost a second hop to check the answer
    return await run_in_threadpool(polled_view, views, store, job_id, owner)


def polled_view(views: JobViews, store: JobStore, job_id: str, owner: str) -> JobView:
    record, position = load_owned_view(views, job_id, owner)
    webhook = webhook_status(store.redis, store.prefix, record.id) if record.webhook else None
    return job_view(record, position, webhook)


@router.get(
    "/jobs/{job_id}/images/{n}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "Unknown job or image"}},
)
def get_image(n: int, record: OwnedJobDep, store: StoreDep) -> Response:
    """The n-th result image (0-based) of a finished job."""
    data = store.image(record.id, n) if record.status == "finished" and n >= 0 else None
    if data is None:
        raise APIError(404, "not_found", f"job {record.id} has no image {n}", "n")
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.delete(
    "/jobs/{job_id}",
    status_code=202,
    response_model=JobView,
    responses={404: {"description": "Unknown job"}, 409: {"description": "The job already ended"}},
)
def cancel_job(record: OwnedJobDep, store: StoreDep, owner: CallerDep) -> JobView:
    """Cancel a queued job now, or a running one at its next denoising step."""
    if record.ended:
        raise APIError(409, "already_ended", f"the job already ended ({record.status.value})", "id")
    store.cancel(record.id)
    JobEvents(store.redis, store.prefix, store.settings.result_ttl).publish(record.id, "status")
    return view(store, load_owned_job(store, record.id, owner))
