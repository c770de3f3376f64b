"""Request and response shapes of the API, derived from `GenerationConfig` so no range is written twice."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from app.errors import APIError
from jobs.record import JobRecord, ReferenceFeaturesSource
from model.config import MAX_REFERENCES, MODEL_DEFAULTED, GenerationConfig
from model.errors import validation_problems

IMAGES_FIELD = "images"


def form_schema() -> dict[str, Any]:
    """OpenAPI schema of the multipart form: the images plus every GenerationConfig field with its range."""
    schema = GenerationConfig.model_json_schema()
    definitions = schema.pop("$defs", {})
    properties: dict[str, Any] = {
        IMAGES_FIELD: {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "minItems": 1,
            "maxItems": MAX_REFERENCES,
            "description": f"1-{MAX_REFERENCES} reference photos of one object (JPEG, PNG or WebP); "
            "repeat the field once per file. Required unless `subject_id` is given.",
        }
    }
    for name, prop in schema["properties"].items():
        prop = copy.deepcopy(prop)
        reference = prop.pop("$ref", None)
        if reference:
            prop.update(definitions[reference.rsplit("/", 1)[-1]])
        if name in MODEL_DEFAULTED:
            prop["description"] += " Default: the model's native value."
        properties[name] = prop
    properties["subject_id"] = {
        "type": "string",
        "description": "A ready subject (POST /subjects) to use instead of `images`: exactly one of the two. "
        "Its prepared references are used as they are (`segment` is then `none`).",
    }
    properties["webhook"] = {
        "type": "string",
        "format": "uri",
        "description": "http(s) URL that gets the job's JSON, signed, when the job ends "
        "(see the headers X-BootPIG-Signature/-Timestamp/-Delivery/-Event in the docs). Refused (422 "
        "`unsafe_webhook`) when the host resolves to a loopback, private, link-local or metadata address not "
        "allowed by the operator, and (422 `webhooks_disabled`) when the server has no webhook secret.",
    }
    return {
        "type": "object",
        "required": ["prompt"],
        "properties": properties,
        "additionalProperties": False,
    }


def parse_generation_fields(fields: dict[str, str], default_segment: str) -> dict[str, Any]:
    """Validate the text fields with GenerationConfig; return the job's parameters (all but the
    model-dependent defaults, which the worker fills in with `resolve_generation_config`).

    Blank optional fields (what an HTML form sends for an empty input) count as absent.
    """
    values: dict[str, Any] = {
        name: value for name, value in fields.items() if value.strip() or name == "prompt"
    }
    if "prompt" in values and not values["prompt"].strip():
        raise APIError(422, "invalid", "prompt must not be empty", "prompt")
    values.setdefault("segment", default_segment)
    try:
        config = GenerationConfig.model_validate(values)
    except ValidationError as exc:
        field, message = validation_problems(exc)[0]
        raise APIError(422, "invalid", f"{field}: {message}", field) from None
    left_to_model = {name for name in MODEL_DEFAULTED if name not in config.model_fields_set}
    return config.model_dump(mode="json", exclude=left_to_model)


class Progress(BaseModel):
    step: int = Field(description="Denoising steps done.")
    total: int = Field(description="Denoising steps of the job.")


class Timings(BaseModel):
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    queued_seconds: float | None = Field(None, description="Submission until a worker started it.")
    run_seconds: float | None = Field(None, description="Worker start until the job ended.")


class WebhookAttempt(BaseModel):
    attempt: int
    at: float = Field(description="Unix time the attempt started.")
    status_code: int | None = Field(None, description="The receiver's HTTP status, if it answered.")
    error: str | None = Field(None, description="Why the attempt failed (None: delivered).")
    seconds: float | None = None


class WebhookView(BaseModel):
    url: str
    state: str = Field(description="waiting (job not ended) | pending (being delivered) | delivered | failed")
    attempts: list[WebhookAttempt] = Field(default_factory=list)


class JobView(BaseModel):
    """What a client sees of a job."""

    id: str
    status: str = Field(description="queued | started | finished | failed | canceled")
    position: int | None = Field(None, description="Place in the queue while queued (1: next).")
    progress: Progress
    timings: Timings
    params: dict[str, Any] = Field(description="The parameters used (the seed is always included).")
    attempt: int = Field(description="1, or 2 when the job was retried after its worker died.")
    cancel_requested: bool = False
    error: str | None = Field(None, description="Short human-readable reason when failed or canceled.")
    images: list[str] = Field(default_factory=list, description="URLs of the PNG results when finished.")
    links: dict[str, str]
    subject_id: str | None = Field(None, description="The prepared subject the job used, if any.")
    webhook: WebhookView | None = Field(None, description="The job's webhook and its delivery attempts.")
    reference_features: ReferenceFeaturesSource | None = Field(
        None,
        description="Set when a reference_schedule='once' job finished: 'cached' when a subject's reference "
        "features were reused from an earlier job on the same worker (the Reference UNet did not run), "
        "'computed' otherwise.",
    )


def _time(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc)


def job_view(record: JobRecord, position: int | None, webhook: dict[str, Any] | None = None) -> JobView:
    """The job as clients see it; `webhook`: its delivery state (`jobs.webhooks.delivery.webhook_status`)."""
    job_id, status = record.id, record.status.value
    created, started, finished = record.created_at, record.started_at, record.finished_at
    images = [f"/jobs/{job_id}/images/{n}" for n in range(record.num_images)] if status == "finished" else []
    return JobView(
        id=job_id,
        status=status,
        position=position if status == "queued" else None,
        progress=Progress(step=record.step, total=record.total),
        timings=Timings(
            created_at=_time(created),
            started_at=_time(started),
            finished_at=_time(finished),
            queued_seconds=None if started is None else round(started - created, 4),
            run_seconds=None if started is None or finished is None else round(finished - started, 4),
        ),
        params=record.params,
        attempt=record.attempt,
        cancel_requested=record.cancel and status == "started",
        error=record.error,
        images=images,
        links={"self": f"/jobs/{job_id}", "cancel": f"/jobs/{job_id}", "events": f"/jobs/{job_id}/events"},
        subject_id=record.subject_id,
        webhook=WebhookView.model_validate(webhook) if webhook else None,
        reference_features=record.reference_features,
    )
