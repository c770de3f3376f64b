"""The function RQ calls for each job, run inside the worker process that holds the loaded pipeline.

RQ's `SimpleWorker` calls `run_job(job_id, attempt)` in the main thread of the process that loaded the
model at start-up (`worker.main`), so nothing forks after CUDA is initialised. Every outcome, including
errors, becomes a state of the job record; the function itself only raises to let a forced shutdown
through, after handing the job back to the queue.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from jobs.events import JobEvents
from jobs.record import JobStatus
from jobs.store import JobStore
from model.config import GenerationConfig, resolve_generation_config
from model.errors import UserFacingError
from worker.errors import InputsExpired, JobTimedOut, UnreadableReference, human_message
from worker.feature_cache import FeatureCache, FeatureKey, feature_key, served_weights

log = logging.getLogger(__name__)


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
    events: JobEvents | None = None  # wakes the API's live followers (GET /jobs/{id}/events)
    # Fast-mode features of prepared subjects (`worker.main` sizes it from the settings; here: none kept).
    features: FeatureCache = field(default_factory=lambda: FeatureCache(0))

    def announce(self, job_id: str, kind: str, **data: Any) -> None:
        if self.events is not None:
            self.events.publish(job_id, kind, **data)


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
        rt.announce(job_id, "status", status=JobStatus.started.value)
        outcome = _run_claimed(rt, job_id, attempt)
        rt.announce(job_id, "status", status=outcome)
        return outcome
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
        config = resolve_generation_config(record.params, rt.pipe.reference_size, rt.pipe.method)
        blobs = fetch_inputs(rt.store, job_id, record.num_inputs)
        key = feature_key(record.subject_id, config, blobs, served_weights(rt.info))
        cached = rt.features.get(key) if key is not None else None
        images = [] if cached is not None else decode_inputs(blobs)  # a hit needs no pixels
        rt.store.set_fields(job_id, {"total": config.steps, "params": config.model_dump_json()})
        result = _generate(rt, job_id, config, images, started, step_times, cached)
    except GenerationCancelled:
        rt.store.fail(job_id, attempt, rt.name, "canceled by the client", JobStatus.canceled)
        return JobStatus.canceled.value
    except Exception as exc:  # noqa: BLE001 - every error must become a failed job, never a dead worker
        message = human_message(exc)
        known = isinstance(exc, UserFacingError)  # the operator's text (it may name paths) suffices
        log.warning("job %s failed: %s", job_id, exc if known else message, exc_info=not known)
        _release_gpu_memory()
        rt.store.fail(job_id, attempt, rt.name, message)
        return JobStatus.failed.value
    finally:
        rt.store.observe("step_seconds", step_times)
    params = config.model_dump(mode="json") | {"seed": result.seed}
    pngs = [encode_png(image) for image in result.images]
    rt.store.observe("job_seconds", [time.monotonic() - started])
    fields = {}
    if result.reference_features is not None:  # fast mode: say whether the Reference UNet ran
        fields["reference_features"] = "cached" if cached is not None else "computed"
        _remember(rt, job_id, key, cached, result.reference_features)
    if not rt.store.complete(job_id, attempt, rt.name, pngs, params, fields):
        log.warning("job %s finished but was no longer ours (reaped or canceled); result dropped", job_id)
    return JobStatus.finished.value


def _remember(rt: WorkerRuntime, job_id: str, key: FeatureKey | None, cached, features) -> None:
    """Keep freshly computed features for the subject's next job, and log where this job's came from."""
    if key is None:
        return
    if cached is None:
        rt.features.put(key, features)
    log.info(
        "job %s: reference features of subject %s %s (cache: %d entries, %.1f MiB)",
        job_id,
        key.subject_id,
        "from the cache" if cached is not None else "computed",
        len(rt.features),
        rt.features.nbytes / 2**20,
    )


def _generate(
    rt: WorkerRuntime, job_id: str, config: GenerationConfig, images, started, step_times, features=None
):
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
        rt.announce(job_id, "progress", step=step, total=total)

    def should_cancel() -> bool:
        if time.monotonic() > deadline:
            raise JobTimedOut(f"the job took longer than the {rt.job_timeout:g} s limit and was stopped")
        return rt.store.cancel_requested(job_id)

    return generate(
        rt.pipe,
        images,
        config,
        rt.segmenters,
        callback=on_step,
        should_cancel=should_cancel,
        reference_features=features,
    )


def fetch_inputs(store: JobStore, job_id: str, count: int) -> list[bytes]:
    blobs = store.inputs(job_id, count)
    if not blobs or any(blob is None for blob in blobs):
        raise InputsExpired("the uploaded images expired before a worker was free; submit the job again")
    return blobs


def decode_inputs(blobs: list[bytes]):
    from model.references import load_image

    images = []
    for index, blob in enumerate(blobs):
        try:
            images.append(load_image(blob))
        except Exception as exc:  # noqa: BLE001 - any decoder failure means the same to the client
            raise UnreadableReference(f"reference image {index} cannot be read") from exc
    return images


def encode_png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _release_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
