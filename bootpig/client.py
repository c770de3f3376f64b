"""A small Python client of the BootPIG service, so nobody has to write multipart code or polling loops.

    from bootpig.client import Client
    with Client("http://127.0.0.1:8000", api_key="...") as client:
        job = client.submit("a dog on the beach", references=["dog1.jpg", "dog2.jpg"], steps=30)
        job = client.wait(job["id"], progress=True)
        paths = client.download(job, "out/")

Every non-2xx answer raises `ServiceError` carrying the server's own message and the field it names.
The API key defaults to the `api_key` setting (`BOOTPIG_API_KEY`), the server to `server_url`.
"""

from __future__ import annotations

import json
import mimetypes
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

FINAL_JOB_STATES = ("finished", "failed", "canceled")
FINAL_SUBJECT_STATES = ("ready", "failed")
Reference = str | Path | bytes


class ServiceError(Exception):
    """An error answer of the service: `status`, `code`, `field` and the server's `message`."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        named = not field or message.startswith(f"{field}:")  # the API often names the field itself
        super().__init__(message if named else f"{field}: {message}")
        self.status, self.code, self.message, self.field = status, code, message, field

    @classmethod
    def from_response(cls, response: httpx.Response) -> ServiceError:
        try:
            error = response.json()["error"]
            field = error.get("field")
            if field and error.get("index") is not None:
                field = f"{field}[{error['index']}]"
            return cls(response.status_code, error.get("code", "error"), error.get("message", ""), field)
        except (ValueError, KeyError, TypeError, AttributeError):
            text = response.text.strip()[:200] or response.reason_phrase
            return cls(response.status_code, "http_error", f"HTTP {response.status_code}: {text}")


class JobFailed(Exception):
    """A job ended failed or canceled; `job` is its last state."""

    def __init__(self, job: dict[str, Any]):
        super().__init__(f"job {job['id']} {job['status']}: {job.get('error') or 'no reason given'}")
        self.job = job


def _upload(reference: Reference, index: int) -> tuple[str, bytes, str]:
    if isinstance(reference, bytes):
        return (f"reference-{index}.jpg", reference, "application/octet-stream")
    path = Path(reference).expanduser()
    return (path.name, path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream")


def _multipart(params: dict[str, Any], references: Iterable[Reference]) -> list[tuple[str, tuple]]:
    """Text fields as file-less parts (so the body is multipart even without files) plus the photos.

    None means "server default" and is left out."""
    parts: list[tuple[str, tuple]] = [
        (name, (None, str(value))) for name, value in params.items() if value is not None
    ]
    return parts + [("images", _upload(ref, i)) for i, ref in enumerate(references)]


class Client:
    """One HTTP connection pool to one service; use it as a context manager or call `close()`."""

    def __init__(
        self,
        server: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ):
        if server is None or api_key is None:
            from bootpig.settings import get_settings

            settings = get_settings()
            server = server or settings.server_url
            api_key = api_key if api_key is not None else settings.api_key
        headers = {"X-API-Key": api_key} if api_key else {}
        self.http = httpx.Client(
            base_url=server.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, url, **kwargs)
        if response.is_error:
            raise ServiceError.from_response(response)
        return response

    # ------------------------------------------------------------------ jobs
    def submit(
        self,
        prompt: str,
        references: Iterable[Reference] = (),
        subject_id: str | None = None,
        webhook: str | None = None,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """POST /generate with reference photos (paths or bytes) or a prepared subject; returns the job.

        `params` are GenerationConfig fields (steps, seed, num_images, ...); None leaves one to the server.
        """
        fields = {"prompt": prompt, "subject_id": subject_id, "webhook": webhook, **params}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call("POST", "/generate", files=_multipart(fields, references), headers=headers).json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/jobs/{job_id}").json()

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """GET /jobs/{id}/events: `(event, data)` pairs as the server sends them, until the job ends."""
        with self.http.stream(
            "GET", f"/jobs/{job_id}/events", timeout=httpx.Timeout(30, read=None)
        ) as response:
            if response.is_error:
                response.read()
                raise ServiceError.from_response(response)
            event, data = "message", []
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    yield event, json.loads("\n".join(data))
                    event, data = "message", []

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        progress: bool | Callable[[dict[str, Any]], None] = False,
        interval: float = 0.5,
    ) -> dict[str, Any]:
        """Poll the job until it ends; returns it when finished, raises `JobFailed` otherwise.

        `progress=True` draws a tqdm bar of the denoising steps; a callable gets every job state seen.
        """
        report, close = _progress_reporter(progress)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                job = self.job(job_id)
                report(job)
                if job["status"] in FINAL_JOB_STATES:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} did not end within {timeout:g} s ({job['status']})")
                time.sleep(interval)
        finally:
            close()
        if job["status"] != "finished":
            raise JobFailed(job)
        return job

    def download(self, job: dict[str, Any], out_dir: str | Path) -> list[Path]:
        """Save a finished job's images as `<out_dir>/<job id>-<n>.png`; returns the paths."""
        out = Path(out_dir).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for n, url in enumerate(job["images"]):
            path = out / f"{job['id']}-{n}.png"
            path.write_bytes(self._call("GET", url).content)
            paths.append(path)
        return paths

    # ------------------------------------------------------------------ subjects
    def create_subject(
        self, references: Iterable[Reference], name: str | None = None, segment: str | None = None
    ) -> dict[str, Any]:
        """POST /subjects: upload the photos once; a worker prepares them (see `wait_subject`)."""
        parts = _multipart({"name": name, "segment": segment}, references)
        return self._call("POST", "/subjects", files=parts).json()

    def subject(self, subject_id: str) -> dict[str, Any]:
        return self._call("GET", f"/subjects/{subject_id}").json()

    def subjects(self) -> list[dict[str, Any]]:
        return self._call("GET", "/subjects").json()["subjects"]

    def delete_subject(self, subject_id: str) -> None:
        self._call("DELETE", f"/subjects/{subject_id}")

    def reference(self, subject_id: str, n: int) -> bytes:
        """The n-th prepared reference (PNG) of a subject: the cut-out the model will see."""
        return self._call("GET", f"/subjects/{subject_id}/references/{n}").content

    def wait_subject(
        self, subject_id: str, timeout: float | None = None, interval: float = 0.5
    ) -> dict[str, Any]:
        """Poll until the subject is prepared; raises `ServiceError` when its preparation failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            subject = self.subject(subject_id)
            if subject["status"] == "ready":
                return subject
            if subject["status"] == "failed":
                raise ServiceError(
                    200, "subject_failed", f"subject {subject_id} failed: {subject.get('error')}"
                )
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"subject {subject_id} was not ready within {timeout:g} s")
            time.sleep(interval)


def _progress_reporter(
    progress: bool | Callable[[dict[str, Any]], None],
) -> tuple[Callable[[dict[str, Any]], None], Callable[[], None]]:
    """A per-state callback and a closer: nothing, the caller's callable, or a tqdm bar of the steps."""
    if callable(progress):
        return progress, lambda: None
    if not progress:
        return lambda job: None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=1, unit="step", desc="queued")

    def report(job: dict[str, Any]) -> None:
        step, total = job["progress"]["step"], job["progress"]["total"] or 1
        bar.total = total
        bar.set_description(job["status"] if job["status"] != "queued" else f"queued ({job.get('position')})")
        bar.n = step
        bar.refresh()

    return report, bar.close
