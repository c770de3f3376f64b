"""The background thread every service process runs: an optional heartbeat, then one fault sweep.

Workers announce themselves and recover other workers' jobs in it; the API runs it without a beat, so
jobs of dead workers and lost queue entries are recovered even while no worker is alive.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from jobs.store import JobStore

log = logging.getLogger(__name__)


class Sweeper(threading.Thread):
    """Every `interval` seconds: `beat()` (when given), then `store.sweep()`; stops on `stop()`."""

    def __init__(self, store: JobStore, interval: float, name: str, beat: Callable[[], None] | None = None):
        super().__init__(name=name, daemon=True)
        self.store, self.interval, self.beat = store, interval, beat
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                if self.beat is not None:
                    self.beat()
                for job_id, outcome in self.store.sweep():
                    log.warning("job %s recovered: %s", job_id, outcome)
            except Exception:  # noqa: BLE001 - Redis may be briefly away; a round must not kill the thread
                log.warning("%s: round failed; trying again in %g s", self.name, self.interval, exc_info=True)

    def stop(self) -> None:
        self.stopped.set()
