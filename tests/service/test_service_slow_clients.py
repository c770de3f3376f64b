"""Slow, stalling, vanishing and greedy clients cannot hold the API's connections or grow its memory."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

READ_TIMEOUT = 1.5
BOUNDARY = "b0undary"


@pytest.fixture(scope="module")
def stack(make_stack):
    """An API (no worker needed) that gives clients READ_TIMEOUT seconds to send headers or a chunk."""
    stack = make_stack(client_read_timeout=READ_TIMEOUT, api_workers=1)  # one process: one metrics registry
    stack.start_api()
    return stack


def open_request(url: str, head: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head.encode())
    return sock


def upload_head(length: int, boundary: str = BOUNDARY) -> str:
    return (
        "POST /generate HTTP/1.1\r\nHost: test\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n"
    )


def first_part(size: int) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="images"; filename="a.jpg"\r\n\r\n'
    return head.encode() + bytes(size)


def wait_closed(sock: socket.socket, within: float) -> tuple[float, bytes]:
    """Seconds until the server closed the connection, and what it sent before."""
    started, received = time.monotonic(), b""
    sock.settimeout(within)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return time.monotonic() - started, received
        received += chunk


def test_headers_sent_one_line_at_a_time_are_cut_off(stack):
    sock = open_request(stack.url, "GET /healthz HTTP/1.1\r\nHost: test\r\n")
    started = time.monotonic()
    closed_after = None
    with sock:
        for n in range(20):  # 10 s of trickling if nobody stops it
            time.sleep(0.5)
            try:
                sock.sendall(f"X-Trickle-{n}: x\r\n".encode())
            except OSError:
                closed_after = time.monotonic() - started
                break
            sock.setblocking(False)
            try:
                if sock.recv(65536) is not None:
                    closed_after = time.monotonic() - started
                    break
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
    assert closed_after is not None and closed_after < READ_TIMEOUT + 2


def test_stalled_body_is_answered_408(stack):
    with open_request(stack.url, upload_head(100_000)) as sock:
        sock.sendall(first_part(1000))  # then nothing
        elapsed, answer = wait_closed(sock, within=READ_TIMEOUT + 10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"request_timeout"' in answer
    assert elapsed < READ_TIMEOUT + 3


def test_upload_slots_are_limited(make_stack, photo_bytes):
    stack = make_stack(max_concurrent_uploads=1, upload_queue_timeout=0.5, api_workers=1)
    url = stack.start_api()
    files = [("images", ("a.jpg", photo_bytes[0], "image/jpeg"))]
    with httpx.Client(base_url=url, timeout=30) as http:
        holder = open_request(url, upload_head(100_000))
        holder.sendall(first_part(1000))  # holds the only slot while it trickles
        time.sleep(0.3)
        busy = http.post("/generate", data={"prompt": "a dog", "steps": "2"}, files=files)
        assert busy.status_code == 503, busy.text
        assert busy.json()["error"]["code"] == "busy"
        holder.close()
        deadline = time.monotonic() + 10
        while (
            response := http.post("/generate", data={"prompt": "a dog", "steps": "2"}, files=files)
        ).status_code == 503:
            assert time.monotonic() < deadline, response.text
            time.sleep(0.2)
        assert response.status_code == 202, response.text


def peak_rss_mib(pid: int) -> float:
    status = open(f"/proc/{pid}/status").read()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def test_concurrent_large_uploads_do_not_grow_api_memory(make_stack):
    stack = make_stack(api_workers=1)  # the process whose memory is read is the one serving
    url = stack.start_api()
    api = stack.processes[-1]
    image = bytes(9 * 2**20)  # never decoded: the form lacks its prompt, refused once it is read
    files = [("images", (f"{i}.jpg", image, "image/jpeg")) for i in range(4)]

    async def upload_all() -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            answers = await asyncio.gather(*(http.post("/generate", files=files) for _ in range(6)))
        return [answer.status_code for answer in answers]

    httpx.get(f"{url}/healthz")
    before = peak_rss_mib(api.pid)
    statuses = asyncio.run(upload_all())
    assert set(statuses) <= {422, 503}, statuses
    grown = peak_rss_mib(api.pid) - before
    assert grown < 80, f"the API grew by {grown:.0f} MiB reading 6 x 36 MiB"


def test_overlong_boundary_is_a_400(stack):
    boundary = "x" * 300
    body = f"--{boundary}\r\nContent-Disposition: form-data; name=prompt\r\n\r\ndog\r\n--{boundary}--\r\n"
    response = httpx.post(
        f"{stack.url}/generate",
        content=body.encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_form"


def rejected_count(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics").text
    line = next(
        (x for x in metrics.splitlines() if x.startswith('bootpig_submissions_total{outcome="rejected"}')), ""
    )
    return float(line.split()[-1]) if line else 0.0


def test_client_leaving_mid_upload_is_not_an_error(stack):
    log_name = f"api-{stack.url.rsplit(':', 1)[1]}.log"
    before = rejected_count(stack.url)
    with open_request(stack.url, upload_head(1_000_000)) as sock:
        sock.sendall(first_part(20_000))
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while rejected_count(stack.url) == before:  # the API noticed, and answered the submission as refused
        assert time.monotonic() < deadline, stack.log(log_name)
        time.sleep(0.1)
    log = stack.log(log_name)
    assert "Traceback" not in log and "unhandled" not in log, log


def test_wrong_method_names_the_allowed_ones(stack):
    response = httpx.put(f"{stack.url}/generate")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"
