"""What a request costs the API process, beyond its answer: thread-pool hops and copies of the uploads.

Under 32 simultaneous submissions on two cores these were the API's largest avoidable costs
(docs/service.md, "Measured"): each hop into FastAPI's thread pool cost ~0.1 ms of CPU plus a wait to be
scheduled, and hiredis's command packer copied every uploaded image once more (0.9 ms per submission).
"""

from __future__ import annotations

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from service_http import submit

from app.main import create_app
from jobs.store import JobStore, connect


@pytest.fixture
def counted_hops(monkeypatch) -> list[str]:
    """Names of the functions run in the thread pool while the test runs."""
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counting(func, *args, **kwargs):
        hops.append(getattr(func, "__name__", repr(func)))
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return hops


def test_submitting_and_polling_take_few_thread_pool_hops(service, photo_bytes, counted_hops):
    config = service.settings()
    with TestClient(create_app(config, store=JobStore(connect(config), config))) as client:
        counted_hops.clear()  # the app's startup is not a request
        answer = submit(client, photo_bytes[:3], steps=2)
        assert answer.status_code == 202, answer.text
        submitting = list(counted_hops)
        counted_hops.clear()
        assert client.get(f"/jobs/{answer.json()['id']}").status_code == 200
        polling = list(counted_hops)
    # the admission checks, then checking the images and creating the job (before: 10 hops)
    assert len(submitting) <= 2, submitting
    assert len(polling) <= 1, polling  # the route itself (before: 5, one per dependency)


def test_large_values_go_to_redis_without_a_copy(service):
    """Each uploaded image is handed to the socket as it is, not copied into one packed command."""
    connection = connect(service.settings()).connection_pool.make_connection()
    image = bytes(300_000)
    packed = connection._command_packer.pack("SET", "key", image)
    assert any(chunk is image for chunk in packed)
