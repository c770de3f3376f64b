"""The parts of POST /generate beyond the generation fields: a prepared subject instead of photos, and
an optional webhook. Kept apart so the route reads as validate -> store -> enqueue."""

from __future__ import annotations

from app.auth import load_owned_subject
from app.errors import APIError
from bootpig.settings import Settings
from jobs.subjects import SubjectStatus, SubjectStore
from jobs.webhooks.guard import UnsafeWebhook, check_webhook_url

SUBJECT_FIELD = "subject_id"
WEBHOOK_FIELD = "webhook"


def split_job_fields(fields: dict[str, str]) -> tuple[dict[str, str], str | None, str | None]:
    """(generation fields, subject id, webhook URL); blank values count as absent like other fields."""
    rest = dict(fields)
    subject_id = rest.pop(SUBJECT_FIELD, "").strip() or None
    webhook = rest.pop(WEBHOOK_FIELD, "").strip() or None
    return rest, subject_id, webhook


def require_one_source(has_images: bool, subject_id: str | None) -> None:
    """Exactly one of uploaded `images` and `subject_id`."""
    if has_images and subject_id:
        raise APIError(
            422, "images_and_subject", "send either images or subject_id, not both", f"images,{SUBJECT_FIELD}"
        )
    if not has_images and not subject_id:
        raise APIError(
            422, "no_images", "at least one reference image (images) or a subject_id is required", "images"
        )


def subject_references(subjects: SubjectStore, subject_id: str, owner: str) -> list[bytes]:
    """The subject's prepared references for a new job (which keeps the subject alive)."""
    record = load_owned_subject(subjects, subject_id, owner, field=SUBJECT_FIELD)
    if record["status"] != SubjectStatus.ready.value:
        detail = f": {record.get('error')}" if record["status"] == SubjectStatus.failed.value else ""
        raise APIError(
            409, "subject_not_ready", f"subject {subject_id} is {record['status']}{detail}", SUBJECT_FIELD
        )
    references = subjects.references_for_job(record)
    if not references:
        raise APIError(404, "not_found", "no such subject", SUBJECT_FIELD)
    return references


def checked_webhook(url: str, settings: Settings) -> str:
    """The webhook URL when this server signs webhooks and the URL passes the SSRF guard, else 422."""
    if not settings.webhook_secret:
        raise APIError(
            422,
            "webhooks_disabled",
            "this server sends no webhooks (the operator has not set BOOTPIG_WEBHOOK_SECRET)",
            WEBHOOK_FIELD,
        )
    try:
        check_webhook_url(url, settings.webhook_allow_hosts)
    except UnsafeWebhook as exc:
        raise APIError(422, "unsafe_webhook", str(exc), WEBHOOK_FIELD) from None
    return url
