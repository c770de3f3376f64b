"""Example subjects of the served model for the web page: `GET /examples` and their PNGs (public)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from app.errors import APIError

router = APIRouter()


@router.get(
    "/examples",
    summary="Example subjects of the served model",
    description="Subjects shipped in the served model folder's `examples/` (the toy-world model has a few): "
    "name, a suggested prompt and image URLs. Empty when the model ships none.",
)
def list_examples(request: Request) -> dict:
    return {"examples": [subject.public() for subject in request.app.state.examples.values()]}


@router.get(
    "/examples/{subject}/{file}",
    summary="One image of an example subject",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "Unknown subject or file"}},
)
def get_example(subject: str, file: str, request: Request) -> FileResponse:
    """Only names from the listing are served: the request's text never becomes a path."""
    example = request.app.state.examples.get(subject)
    if example is None:
        raise APIError(404, "not_found", "no such example subject", "subject")
    if file not in example.files:
        raise APIError(404, "not_found", f"example {subject} has no such image", "file")
    return FileResponse(
        example.files[file], media_type="image/png", headers={"Cache-Control": "public, max-age=3600"}
    )
