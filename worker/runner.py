"""The function RQ calls for each job, run inside the worker process that holds the loaded pipeline.

RQ's `SimpleWorker` calls `run_job(job_id, attempt)` in the main thread of the process that loaded the
model at start-up (`worker.main`), so nothing forks after CUDA is initialised. Every outcome, including
errors, becomes a state of the job record; the function itself only raises to let a forced shutdown
through, after handing the job back to the queue.
"""

from __future__ import annotations

import io
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from rq.timeouts import JobTimeoutException

from jobs.record import JobStatus
from jobs.store import JobStore
from model.config import GenerationConfig

log = logging.getLogger(__name__)


class JobTimedOut(RuntimeError):
    """Raised at a denoising step once the job has used up `job_timeout`."""


@dataclass
class WorkerRuntime:
    """What one worker process loaded once and reuses for every job."""

    store: JobStore
    pipe: Any
    info: Any  # model.loading.ModelInfo
    segmenters: Any  # model.generate.SegmenterCache
    name: str
    job_timeout: float
    step_delay: float = 0.0
    current_job: str | None = field(default=None)


_runtime: WorkerRuntime | None = None


def install_runtime(runtime: WorkerRuntime) -> None:
    global _runtime
    _runtime = runtime


def runtime() -> WorkerRuntime:
    if _runtime is None:
        raise RuntimeError("run_job runs only inside `bootpig worker` (no pipeline loaded in this process)")
    return _runtime


def run_job(job_id: str, attempt: int) -> str:
    """Claim the job, run it, store the outcome; returns the final state (for RQ's log)."""
    rt = runtime()
    # Set before the claim and cleared only after the outcome is stored: the heartbeat then proves to the
    # reaper whether this worker still runs the job (see `jobs.store._forgot`).
    rt.current_job = job_id
    try:
        claimed = rt.store.claim(job_id, attempt, rt.name)
        if claimed != "ok":
            log.info("job %s attempt %s skipped: %s", job_id, attempt, claimed)
            return f"skipped ({claimed})"
        return _run_claimed(rt, job_id, attempt)
    except (SystemExit, KeyboardInterrupt):
        # A second SIGTERM/Ctrl-C (cold shutdown): give the job back instead of losing it.
        outcome = rt.store.release(job_id, attempt, rt.name)
        if outcome:
            log.warning("job %s %s: the worker is stopping", job_id, outcome)
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. Redis failing while the result is stored
        log.exception("job %s: storing its outcome failed", job_id)
        try:
            rt.store.fail(job_id, attempt, rt.name, human_message(exc))
        except Exception:  # noqa: BLE001 - the reaper/timeout will settle it
            log.exception("job %s: could not mark it failed", job_id)
        return JobStatus.failed.value
    finally:
        rt.current_job = None


def _run_claimed(rt: WorkerRuntime, job_id: str, attempt: int) -> str:
    from model.pipeline import GenerationCancelled

    record = rt.store.get(job_id)
    started = time.monotonic()
    step_times: list[float] = []
    try:
        if record is None:
            raise InputsExpired("the job expired before a worker was free; submit it again")
        config = resolve_config(record.params, rt.pipe)
        images = load_inputs(rt.store, job_id, record.num_inputs)
        rt.store.set_fields(job_id, {"total": config.steps, "params": config.model_dump_json()})
        result = _generate(rt, job_id, config, images, started, step_times)
    except GenerationCancelled:
        rt.store.fail(job_id, attempt, rt.name, "canceled by the client", JobStatus.canceled)
        return JobStatus.canceled.value
    except Exception as exc:  # noqa: BLE001 - every error must become a failed job, never a dead worker
        message = human_message(exc)
        log.warning("job %s failed: %s", job_id, message, exc_info=not isinstance(exc, JobTimedOut))
        _release_gpu_memory()
        rt.store.fail(job_id, attempt, rt.name, message)
        return JobStatus.failed.value
    finally:
        rt.store.observe("step_seconds", step_times)
    params = config.model_dump(mode="json") | {"seed": result.seed}
    pngs = [encode_png(image) for image in result.images]
    rt.store.observe("job_seconds", [time.monotonic() - started])
    if not rt.store.complete(job_id, attempt, rt.name, pngs, params):
        log.warning("job %s finished but was no longer ours (reaped or canceled); result dropped", job_id)
    return JobStatus.finished.value


def _generate(rt: WorkerRuntime, job_id: str, config: GenerationConfig, images, started, step_times):
    from model.generate import generate

    deadline = started + rt.job_timeout
    last = [time.monotonic()]

    def on_step(step: int, total: int) -> None:
        if rt.step_delay:
            time.sleep(rt.step_delay)
        now = time.monotonic()
        step_times.append(now - last[0])
        last[0] = now
        rt.store.progress(job_id, step, total)

    def should_cancel() -> bool:
        if time.monotonic() > deadline:
            raise JobTimedOut(f"the job took longer than the {rt.job_timeout:g} s limit and was stopped")
        return rt.store.cancel_requested(job_id)

    return generate(rt.pipe, images, config, rt.segmenters, callback=on_step, should_cancel=should_cancel)


def resolve_config(params: dict[str, Any], pipe) -> GenerationConfig:
    """Fill what the request left to the model (size, pooling) from the loaded checkpoint."""
    params = dict(params)
    params.setdefault("height", pipe.reference_size)
    params.setdefault("width", pipe.reference_size)
    params.setdefault("pooling", pipe.method.pooling)
    return GenerationConfig(**params)


def load_inputs(store: JobStore, job_id: str, count: int):
    from model.references import load_image

    blobs = store.inputs(job_id, count)
    if not blobs or any(blob is None for blob in blobs):
        raise InputsExpired("the uploaded images expired before a worker was free; submit the job again")
    return [load_image(blob) for blob in blobs]


class InputsExpired(RuntimeError):
    pass


def encode_png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


_PATH = re.compile(r"(?:[A-Za-z]:)?(?:~|\.{0,2})?(?:/[\w.@+-]+){2,}/?")


def human_message(exc: BaseException) -> str:
    """A short message for the client: no stack trace, no file system paths."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "the GPU ran out of memory for this request; try fewer or smaller images, or retry later"
    if isinstance(exc, JobTimedOut | InputsExpired):
        return str(exc)
    if isinstance(exc, JobTimeoutException):  # RQ's backstop, when a step itself hangs
        return "the job took longer than the time limit and was stopped"
    if isinstance(exc, FileNotFoundError) and "TRACER" in str(exc):
        return (
            "segment=tracer is not available on this worker (its TRACER-B7 weights are not installed); "
            "submit with segment=none or ask the operator to install the weights"
        )
    if isinstance(exc, ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return f"invalid parameters: {problems}"
    if isinstance(exc, ValueError | OSError):
        text = _PATH.sub("<path>", str(exc)).strip().splitlines()
        return f"generation failed: {text[0][:300]}" if text else "generation failed"
    return f"generation failed because of an internal error ({type(exc).__name__}); see the worker log"


def _release_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
