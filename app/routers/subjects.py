"""Subjects: upload an object's photos once, check the prepared cut-outs, generate from them many times."""

from __future__ import annotations

import io

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from PIL import Image

from app.auth import CallerDep, load_owned_subject
from app.deps import SettingsDep, SubjectsDep, UploadSlotsDep
from app.errors import APIError
from app.images import ImageLimits, stored_references
from app.schemas import IMAGES_FIELD
from app.subject_schemas import SUBJECT_NAME_MAX_CHARS, SubjectList, SubjectView, subject_view
from app.uploads import UPLOAD_RESPONSES, UploadLimits, read_multipart
from model.config import MAX_REFERENCES, Segmenter

router = APIRouter(tags=["subjects"])
SUBJECT_FIELDS = {"name", "segment"}


def subject_form_schema() -> dict:
    return {
        "type": "object",
        "required": [IMAGES_FIELD],
        "properties": {
            IMAGES_FIELD: {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "minItems": 1,
                "maxItems": MAX_REFERENCES,
                "description": f"1-{MAX_REFERENCES} photos of one object (JPEG, PNG or WebP).",
            },
            "name": {"type": "string", "maxLength": SUBJECT_NAME_MAX_CHARS, "description": "A label."},
            "segment": {
                "type": "string",
                "enum": [m.value for m in Segmenter],
                "description": "Cut the object out with TRACER-B7 (tracer) or use the photos as they are "
                "(none). Default: the server's BOOTPIG_SEGMENT.",
            },
        },
        "additionalProperties": False,
    }


@router.post(
    "/subjects",
    status_code=202,
    response_model=SubjectView,
    summary="Create a subject",
    description="Upload the photos once; a worker prepares them (orientation, cut-out, object on white, "
    "square, the model's reference size) ahead of queued generation jobs. Answers 202 with "
    "`Location: /subjects/{id}`; poll it until `status` is `ready`, look at `references`, then send "
    "`subject_id` instead of `images` to POST /generate.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": subject_form_schema()}},
        }
    },
    responses={
        **UPLOAD_RESPONSES,
        422: {"description": "No images, too many, an unknown field, or a bad `segment`/`name`"},
    },
)
async def create_subject(
    request: Request, owner: CallerDep, subjects: SubjectsDep, settings: SettingsDep, slots: UploadSlotsDep
) -> JSONResponse:
    async with slots.slot():
        photos, name, segment = await read_subject_form(request, settings)
    record = await run_in_threadpool(subjects.create, owner, name or None, segment, photos)
    body = subject_view(record).model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers={"Location": f"/subjects/{record['id']}"})


async def read_subject_form(request: Request, settings) -> tuple[list[bytes], str, str]:
    """The checked photos (stored as jobs store theirs), name and segmenter of a POST /subjects."""
    form = await read_multipart(request, UploadLimits.from_settings(settings, IMAGES_FIELD, MAX_REFERENCES))
    try:
        if not form.files:
            raise APIError(422, "no_images", "at least one photo of the object is required", IMAGES_FIELD)
        unknown = sorted(set(form.fields) - SUBJECT_FIELDS)
        if unknown:
            raise APIError(422, "invalid", f"{unknown[0]}: unknown field", unknown[0])
        name = form.fields.get("name", "").strip()
        if len(name) > SUBJECT_NAME_MAX_CHARS:
            raise APIError(422, "invalid", f"name: at most {SUBJECT_NAME_MAX_CHARS} characters", "name")
        segment = form.fields.get("segment", "").strip() or settings.segment.value
        if segment not in {m.value for m in Segmenter}:
            choices = ", ".join(m.value for m in Segmenter)
            raise APIError(422, "invalid", f"segment: must be one of {choices}", "segment")
        limits, side = ImageLimits.from_settings(settings), settings.stored_reference_side
        photos = await run_in_threadpool(stored_references, form.files, limits, side)
        return photos, name, segment
    finally:
        form.close()


@router.get("/subjects", response_model=SubjectList, summary="The caller's subjects")
def list_subjects(owner: CallerDep, subjects: SubjectsDep) -> SubjectList:
    return SubjectList(subjects=[subject_view(record) for record in subjects.list(owner)])


@router.get(
    "/subjects/{subject_id}",
    response_model=SubjectView,
    summary="A subject: status and prepared references",
    responses={404: {"description": "Unknown subject"}},
)
def get_subject(subject_id: str, owner: CallerDep, subjects: SubjectsDep) -> SubjectView:
    return subject_view(load_owned_subject(subjects, subject_id, owner))


@router.get(
    "/subjects/{subject_id}/references/{n}",
    response_class=Response,
    summary="One prepared reference as PNG",
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "Unknown subject or reference"}},
)
def get_reference(subject_id: str, n: int, owner: CallerDep, subjects: SubjectsDep) -> Response:
    """The n-th prepared reference (0-based): the object on white, exactly as the model will see it."""
    load_owned_subject(subjects, subject_id, owner)
    data = subjects.reference(subject_id, n) if n >= 0 else None
    if data is None:
        raise APIError(404, "not_found", f"subject {subject_id} has no prepared reference {n}", "n")
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, format="PNG")  # stored as lossless WebP, served as PNG
    return Response(
        buffer.getvalue(), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"}
    )


@router.delete(
    "/subjects/{subject_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a subject",
    responses={404: {"description": "Unknown subject"}},
)
def delete_subject(subject_id: str, owner: CallerDep, subjects: SubjectsDep) -> Response:
    """Deletes the subject and its references; jobs already submitted with it keep their own copies."""
    record = load_owned_subject(subjects, subject_id, owner)
    subjects.delete(subject_id, owner, max(record["num_uploads"], record["num_references"]))
    return Response(status_code=204)
