"""OpenAPI documents every route, field and error of subjects, live events and webhooks."""

from __future__ import annotations

import pytest

from app.main import create_app
from bootpig.settings import Settings


@pytest.fixture(scope="module")
def spec() -> dict:
    return create_app(Settings()).openapi()  # building the schema touches no Redis


def test_generate_documents_subject_and_webhook(spec):
    operation = spec["paths"]["/generate"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["prompt"]  # images or subject_id: exactly one, checked by the API
    assert "subject_id" in form["properties"]["images"]["description"]
    assert "instead of `images`" in form["properties"]["subject_id"]["description"]
    assert form["properties"]["webhook"]["format"] == "uri"
    assert "unsafe_webhook" in form["properties"]["webhook"]["description"]
    assert {"202", "404", "409", "422", "429"} <= set(operation["responses"])
    job = spec["components"]["schemas"]["JobView"]["properties"]
    assert {"subject_id", "webhook"} <= set(job)
    attempt = spec["components"]["schemas"]["WebhookAttempt"]["properties"]
    assert {"attempt", "at", "status_code", "error"} <= set(attempt)


def test_subject_routes_are_documented(spec):
    paths = spec["paths"]
    create = paths["/subjects"]["post"]
    form = create["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["images"] and form["properties"]["images"]["maxItems"] == 8
    assert set(form["properties"]["segment"]["enum"]) == {"tracer", "none"}
    assert create["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("SubjectView")
    assert {"401", "413", "415", "422"} <= set(create["responses"])
    listing = paths["/subjects"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listing["$ref"].endswith("SubjectList")
    assert "404" in paths["/subjects/{subject_id}"]["get"]["responses"]
    assert "204" in paths["/subjects/{subject_id}"]["delete"]["responses"]
    reference = paths["/subjects/{subject_id}/references/{n}"]["get"]["responses"]
    assert "image/png" in reference["200"]["content"] and "404" in reference
    subject = spec["components"]["schemas"]["SubjectView"]["properties"]
    assert {"status", "references", "expires_in", "last_used_at", "error"} <= set(subject)


def test_events_route_is_documented(spec):
    events = spec["paths"]["/jobs/{job_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert "404" in events["responses"]
    assert "finished" in events["responses"]["200"]["description"]
