"""Request and response shapes of the API, derived from `GenerationConfig` so no range is written twice."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from app.errors import APIError
from jobs.record import JobRecord
from model.config import MAX_REFERENCES, GenerationConfig

IMAGES_FIELD = "images"
# Left to the worker when absent: they depend on the loaded checkpoint (native size, trained pooling).
MODEL_DEFAULTED = ("height", "width", "pooling")


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
            "repeat the field once per file.",
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
    return {
        "type": "object",
        "required": [IMAGES_FIELD, "prompt"],
        "properties": properties,
        "additionalProperties": False,
    }


def parse_generation_fields(fields: dict[str, str], default_segment: str) -> dict[str, Any]:
    """Validate the text fields with GenerationConfig; return the job's parameters (all but the
    model-dependent defaults, which the worker fills in).

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
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"]
        if first["type"] == "missing":
            message = "field required"
        elif first["type"] == "extra_forbidden":
            message = "unknown field"
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


def _time(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc)


def job_view(record: JobRecord, position: int | None) -> JobView:
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
        links={"self": f"/jobs/{job_id}", "cancel": f"/jobs/{job_id}"},
    )
