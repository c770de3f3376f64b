"""What a failed job tells its client: typed errors for every known cause, a generic line for the rest.

A cause the worker knows (timeout, expired uploads, an unreadable reference, no TRACER weights, invalid
parameters, GPU out of memory) raises or maps to a message written for the client. Any other exception
is a bug or an operator's problem: the client gets its type and a pointer to the worker log, never its
text (which may name files, hosts or internals).
"""

from __future__ import annotations

from pydantic import ValidationError
from rq.timeouts import JobTimeoutException

from model.errors import UserFacingError, describe_validation_error


class JobTimedOut(UserFacingError, RuntimeError):
    """Raised at a denoising step once the job has used up `job_timeout`."""


class InputsExpired(UserFacingError, RuntimeError):
    """The job's record or uploaded images expired in Redis before a worker was free."""


class UnreadableReference(UserFacingError, ValueError):
    """A stored reference image does not decode (the API checks uploads, so this is rare)."""


def human_message(exc: BaseException) -> str:
    """A short message for the client: no stack trace, no file system paths."""
    import torch

    if isinstance(exc, UserFacingError):
        return exc.for_user()
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "the GPU ran out of memory for this request; try fewer or smaller images, or retry later"
    if isinstance(exc, JobTimeoutException):  # RQ's backstop, when a step itself hangs
        return "the job took longer than the time limit and was stopped"
    if isinstance(exc, ValidationError):
        return f"invalid parameters: {describe_validation_error(exc)}"
    return f"generation failed because of an internal error ({type(exc).__name__}); see the worker log"
