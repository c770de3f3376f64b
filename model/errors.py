"""Errors whose text is written for people, and the one way a pydantic validation error becomes a message.

Light on purpose (pydantic only): the API, the CLI and the worker all import it, and the API never
imports torch.
"""

from __future__ import annotations

from pydantic import ValidationError

# Pydantic's wording for these reads oddly in a form or on a command line.
_PLAIN_WORDING = {"missing": "field required", "extra_forbidden": "unknown field"}


class UserFacingError(Exception):
    """A failure whose cause is known and can be told to the client who made the request.

    `str(exc)` is the full text for logs and the CLI (it may name files on this machine);
    `for_user()` is what an API client sees: the class's fixed `user_message` when it sets one,
    else `str(exc)`, which such subclasses then keep free of paths and internals.
    """

    user_message: str = ""

    def for_user(self) -> str:
        return self.user_message or str(self)


class SegmenterUnavailable(UserFacingError, FileNotFoundError):
    """segment=tracer was asked for, but this machine has no TRACER-B7 weights."""

    user_message = (
        "segment=tracer is not available on this worker (its TRACER-B7 weights are not installed); "
        "submit with segment=none or ask the operator to install the weights"
    )


def validation_problems(exc: ValidationError) -> list[tuple[str | None, str]]:
    """`(field, message)` for every problem; nested fields dotted (`mask.threshold`)."""
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or None
        problems.append((field, _PLAIN_WORDING.get(error["type"], error["msg"])))
    return problems


def describe_validation_error(exc: ValidationError) -> str:
    """All problems in one line: `steps: Input should be ...; prompt: field required`."""
    return "; ".join(
        f"{field}: {message}" if field else message for field, message in validation_problems(exc)
    )
