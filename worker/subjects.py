"""The "prepare subject" job: cut out a subject's photos once, on the worker that has the segmenter.

RQ calls `prepare_subject(subject_id)` in the worker process (see `worker.main`), next to `run_job`.
The references are prepared exactly as a generation job would prepare them (`prepare_references` at
the model's reference size), so a job that names the subject sees the same images.
"""

from __future__ import annotations

import io
import logging
import time

from jobs.subjects import SubjectStore
from worker.errors import human_message
from worker.runner import runtime

log = logging.getLogger(__name__)


def encode_reference(image) -> bytes:
    """Lossless WebP: the exact pixels the model sees, in a fraction of a PNG's bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", lossless=True, quality=100, method=4)
    return buffer.getvalue()


def prepare_subject(subject_id: str) -> str:
    from model.config import Segmenter
    from model.references import load_image, prepare_references

    rt = runtime()
    subjects = SubjectStore(rt.store.redis, rt.store.settings)
    subject = subjects.get(subject_id)
    if subject is None:
        return "skipped (deleted or expired)"
    count = subject["num_uploads"]
    started = time.monotonic()
    try:
        blobs = subjects.uploads(subject_id, count)
        if not blobs or any(blob is None for blob in blobs):
            raise ValueError("the uploaded photos expired before a worker was free; create the subject again")
        segment = Segmenter(subject["segment"])
        segmenter = rt.segmenters.get() if segment is Segmenter.tracer else None
        images = [load_image(blob) for blob in blobs]
        references = prepare_references(images, rt.pipe.reference_size, segment, segmenter)
        encoded = [encode_reference(image) for image in references]
    except Exception as exc:  # noqa: BLE001 - every error becomes a failed subject, never a dead worker
        message = human_message(exc)
        log.warning("subject %s failed: %s", subject_id, message)
        subjects.fail(subject_id, message, count)
        return "failed"
    seconds = time.monotonic() - started
    if not subjects.store_references(subject_id, encoded, rt.pipe.reference_size, seconds):
        return "skipped (deleted while prepared)"
    log.info("subject %s prepared: %d references in %.2f s", subject_id, len(encoded), seconds)
    return "ready"
