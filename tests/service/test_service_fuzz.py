"""Fuzz every operation of the published OpenAPI schema over real HTTP: no input may cause a 5xx.

Schemathesis turns /openapi.json into Hypothesis strategies (valid and invalid requests); the examples
per operation are bounded and derandomized, so the test takes seconds and a failure reproduces.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

EXAMPLES_PER_OPERATION = 25  # per operation and mode
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.fixture(scope="module")
def operations(service) -> dict:
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    found = [result.ok() for result in schema.get_all_operations()]
    return {f"{op.method.upper()} {op.path}": op for op in found}


def test_schema_covers_the_api(operations):
    assert {"POST /generate", "GET /jobs/{job_id}", "DELETE /jobs/{job_id}", "GET /readyz"} <= set(operations)


OPERATIONS = [
    "POST /generate",
    "GET /jobs/{job_id}",
    "DELETE /jobs/{job_id}",
    "GET /jobs/{job_id}/images/{n}",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /examples",
    "GET /examples/{subject}/{file}",
]
# Invalid requests exist only where the schema constrains something (form fields, the image index).
NEGATIVE = ["POST /generate", "GET /jobs/{job_id}/images/{n}"]


@pytest.mark.parametrize(
    "name, mode",
    [(name, GenerationMode.POSITIVE) for name in OPERATIONS]
    + [(name, GenerationMode.NEGATIVE) for name in NEGATIVE],
    ids=str,
)
def test_no_request_makes_the_api_fail(operations, name, mode):
    @FUZZ_SETTINGS
    @given(case=operations[name].as_strategy(mode))
    def fuzz(case) -> None:
        response = case.call(timeout=30)
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"
        assert "Traceback" not in response.text

    fuzz()
