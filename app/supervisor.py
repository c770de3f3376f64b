"""Run several API processes on one port, each with its own SO_REUSEPORT socket.

uvicorn's `workers=N` shares one listening socket between its processes, and whichever process wakes
first accepts every connection waiting in the backlog: with two processes, a burst of 32 clients was
accepted 31 to 1 (measured), so one core served it while the other idled, and the keep-alive connections
stayed that lopsided afterwards. With SO_REUSEPORT each process listens on a socket of its own and Linux
spreads new connections over them by a hash of the client's address, so a burst is shared evenly.

The supervisor holds no listening socket itself (one it never accepted on would swallow its share of the
connections); it checks that the port is free before starting the processes, restarts a process that
dies, and stops them all on SIGINT/SIGTERM. Each process ends with the supervisor even when it is killed
outright (`stop_with_supervisor`).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
STARTUP_FAILURE = 3  # uvicorn's exit code for an app or socket that cannot start: restarting won't help
STOP_GRACE_SECONDS = 30  # a process still running this long after SIGTERM is killed
PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def reuse_port_supported() -> bool:
    """Only Linux balances connections over SO_REUSEPORT sockets (elsewhere the option means other things)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listen_family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def claim_port(host: str, port: int) -> int:
    """The port to serve on, checked free: port 0 becomes a free port chosen by the system.

    A socket without SO_REUSEPORT cannot bind a port that any socket listens on, so this also refuses a
    port held by a stale `bootpig serve` (whose reuse-port sockets a new one would otherwise silently join).
    Raises OSError (address already in use)."""
    with socket.socket(listen_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return probe.getsockname()[1]


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A bound socket that shares `port` with the other API processes (listened on by uvicorn)."""
    sock = socket.socket(listen_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Supervisor:
    """Keep `count` processes running `target(host, port)` until SIGINT/SIGTERM."""

    def __init__(self, count: int, target: Callable[[str, int], None], host: str, port: int):
        self.count, self.target, self.host, self.port = count, target, host, port
        self.context = multiprocessing.get_context("spawn")
        self.stopping = threading.Event()

    def _start(self) -> multiprocessing.process.BaseProcess:
        process = self.context.Process(target=self.target, args=(self.host, self.port), name="bootpig-api")
        process.start()
        return process

    def run(self) -> int:
        """Serve until stopped; 0, or STARTUP_FAILURE when a process could not start its app or socket."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        processes = [self._start() for _ in range(self.count)]
        log.info(
            "serving on http://%s:%d with %d processes (pids %s)",
            f"[{self.host}]" if ":" in self.host else self.host,
            self.port,
            self.count,
            ", ".join(str(p.pid) for p in processes),
        )
        outcome = 0
        while not self.stopping.wait(0.5):
            for index, process in enumerate(processes):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("API process %d could not start; stopping", process.pid)
                    outcome = STARTUP_FAILURE
                    self.stopping.set()
                    break
                log.warning("API process %d ended (exit %s); starting another", process.pid, process.exitcode)
                processes[index] = self._start()
        for process in processes:
            if process.is_alive():
                process.terminate()  # uvicorn's graceful stop: open requests are answered first
        for process in processes:
            process.join(STOP_GRACE_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        return outcome


def stop_with_supervisor() -> None:
    """In an API process started by a supervisor (`api_workers` > 1), end with the supervisor.

    A supervisor killed outright (SIGKILL, the OOM killer) cannot stop its processes: they would go on
    serving their port, so a restarted `bootpig serve` could not bind it, and a test that kills the API
    would leak them. Linux delivers SIGTERM (uvicorn's graceful stop) to this process when its parent
    dies. A process not started by multiprocessing (`api_workers` = 1, tests) is left alone: its parent
    is whoever ran it."""
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent.pid:  # the supervisor died before the request above was made
        os.kill(os.getpid(), signal.SIGTERM)
