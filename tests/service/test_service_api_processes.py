"""`bootpig serve` with several API processes: a burst of connections is shared by them, a process that
dies is replaced, and a port that is already taken is refused with a clear message."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import psutil
import pytest

CLIENTS = 32


@pytest.fixture(scope="module")
def api(make_stack):
    stack = make_stack()
    url = stack.start_api(api_workers=2)
    supervisor = stack.processes[-1]
    wait_until_every_process_listens(supervisor, port_of(url))
    return stack, url, supervisor


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def api_processes(supervisor: subprocess.Popen) -> list[psutil.Process]:
    children = psutil.Process(supervisor.pid).children(recursive=True)
    return [c for c in children if "spawn_main" in " ".join(c.cmdline())]


def connections_per_process(supervisor: subprocess.Popen, port: int) -> collections.Counter:
    counts = collections.Counter()
    for process in api_processes(supervisor):
        established = process.net_connections(kind="tcp")
        counts[process.pid] = sum(
            1 for c in established if c.laddr.port == port and c.status == "ESTABLISHED"
        )
    return counts


async def open_burst(url: str) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """CLIENTS connections opened at once, each having been answered once (so the server accepted it)."""
    host, port = url.removeprefix("http://").split(":")

    async def one():
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
        return reader, writer

    return await asyncio.gather(*(one() for _ in range(CLIENTS)))


def listening_sockets(supervisor: subprocess.Popen, port: int) -> dict[int, set[str]]:
    """Per API process, the kernel's ids (socket inodes) of the sockets it listens on at `port`."""
    found = {}
    for process in api_processes(supervisor):
        listening = [c for c in process.net_connections(kind="tcp") if c.status == "LISTEN"]
        found[process.pid] = {
            os.readlink(f"/proc/{process.pid}/fd/{c.fd}") for c in listening if c.laddr.port == port
        }
    return found


def wait_until_every_process_listens(supervisor: subprocess.Popen, port: int, count: int = 2) -> None:
    """The API answers as soon as one process is up; the others may still be importing (spawned
    processes start from scratch, which took seconds on a loaded CI machine)."""
    deadline = time.monotonic() + 60
    while True:
        sockets = listening_sockets(supervisor, port)
        if len(sockets) == count and all(sockets.values()):
            return
        assert time.monotonic() < deadline, sockets
        time.sleep(0.2)


def test_each_api_process_listens_on_its_own_socket(api):
    """The mechanism behind the next test: a socket shared by the processes is accepted on greedily."""
    _, url, supervisor = api
    sockets = listening_sockets(supervisor, port_of(url))
    assert len(sockets) == 2 and all(len(ids) == 1 for ids in sockets.values()), sockets
    first, second = sockets.values()
    assert first != second, sockets


def test_a_burst_of_connections_is_shared_by_the_api_processes(api):
    """With one shared listening socket, whichever process woke first accepted nearly the whole burst
    (31 of 32 seen); with a reuse-port socket per process the kernel spreads them (binomially: each of
    two processes gets fewer than 4 of 32 with probability 1e-6)."""
    _, url, supervisor = api
    port = port_of(url)
    for _ in range(3):

        async def burst() -> collections.Counter:
            streams = await open_burst(url)
            try:
                return connections_per_process(supervisor, port)
            finally:
                for _, writer in streams:
                    writer.close()

        counts = asyncio.run(burst())
        assert len(counts) == 2 and sum(counts.values()) == CLIENTS, counts
        assert min(counts.values()) >= 4, counts


def test_a_dead_api_process_is_replaced(api):
    _, url, supervisor = api
    victim = api_processes(supervisor)[0]
    victim.kill()
    victim.wait(10)
    deadline = time.monotonic() + 60
    while True:
        current = api_processes(supervisor)
        if len(current) == 2 and victim.pid not in {p.pid for p in current}:
            break
        assert time.monotonic() < deadline, [p.pid for p in current]
        time.sleep(0.2)
    wait_until_every_process_listens(supervisor, port_of(url))
    for _ in range(10):  # every connection lands on a live process
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/healthz").status_code == 200
            time.sleep(0.05)


def test_a_taken_port_is_refused(make_stack):
    stack = make_stack()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**stack.env, "BOOTPIG_API_WORKERS": "2"}
        command = [sys.executable, "-m", "bootpig.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "address already in use" in done.stderr.lower(), done.stderr[-2000:]


def test_the_api_processes_stop_with_sigterm(make_stack):
    stack = make_stack()
    stack.start_api(api_workers=2)
    supervisor = stack.processes[-1]
    children = api_processes(supervisor)
    assert len(children) == 2
    os.kill(supervisor.pid, signal.SIGTERM)
    assert supervisor.wait(30) == 0
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive
