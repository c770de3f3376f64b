"""`bootpig worker`: load the pipeline once, then serve the queue until told to stop.

RQ's `SimpleWorker` runs jobs in this process (the forking worker would lose CUDA), and while a job runs it
sends no heartbeat. So a thread of ours refreshes `worker:<name>` every `heartbeat_interval`; when a
worker is SIGKILLed that key expires after `heartbeat_ttl` and any process's reaper (every worker and the
API run one) retries or fails its job, and enqueues again any queued job that lost its RQ entry.
SIGTERM/Ctrl-C: RQ's warm shutdown lets the running job finish;
a second signal stops at once and `run_job` hands the job back to the queue.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time

from rq import SimpleWorker
from rq.serializers import JSONSerializer

from app.notify import start_dispatcher
from bootpig.settings import Settings, load_served_pipeline
from jobs.events import JobEvents
from jobs.store import JobStore, connect
from jobs.sweeper import Sweeper
from worker.feature_cache import FeatureCache
from worker.namesake import release_dead_namesake
from worker.runner import WorkerRuntime, install_runtime

log = logging.getLogger(__name__)


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class Heartbeat:
    """What this worker announces in Redis (and its model), independent of the job loop."""

    def __init__(self, store: JobStore, runtime: WorkerRuntime):
        self.store, self.runtime = store, runtime
        self.started_at = time.time()

    def beat(self) -> None:
        info = self.runtime.info
        beat_at = time.time()  # read before the current job: the order `jobs.store._forgot` relies on
        self.store.heartbeat(
            self.runtime.name,
            {
                "name": self.runtime.name,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "model": info.model,
                "checkpoint": info.checkpoint,
                "demo": info.is_demo,
                "model_name": info.name,
                "model_kind": info.kind.value,
                "native_size": info.native_size,
                "trained_weights": info.has_trained_weights,
                "device": info.device,
                "dtype": info.dtype,
                "model_loaded": True,
                "job": self.runtime.current_job,
                "since": self.started_at,
                "beat_at": beat_at,
            },
        )


def serve(settings: Settings, burst: bool = False) -> int:
    from model.generate import SegmenterCache

    name = settings.worker_name or default_worker_name()
    if settings.worker_nice and hasattr(os, "nice"):
        os.nice(settings.worker_nice)  # the API's request threads come first when they share the CPU
    connection = connect(settings)
    connection.ping()  # fail before the (slow) model load when Redis is unreachable
    store = JobStore(connection, settings)
    log.info("worker %s: loading the model", name)
    pipe, info = load_served_pipeline(settings)
    runtime = WorkerRuntime(
        store=store,
        pipe=pipe,
        info=info,
        segmenters=SegmenterCache(settings.tracer_weights, info.device),
        name=name,
        job_timeout=settings.job_timeout,
        step_delay=settings.worker_step_delay,
        events=JobEvents(connection, settings.key_prefix, settings.result_ttl),
        features=FeatureCache(settings.feature_cache_bytes),
    )
    install_runtime(runtime)
    rq_worker = SimpleWorker(
        [store.queue], connection=connection, serializer=JSONSerializer, name=name, log_job_description=False
    )
    release_dead_namesake(store, rq_worker)  # before our own heartbeat replaces the namesake's
    heartbeat = Heartbeat(store, runtime)
    heartbeat.beat()
    sweeper = Sweeper(store, settings.heartbeat_interval, "bootpig-heartbeat", beat=heartbeat.beat)
    sweeper.start()
    webhooks = start_dispatcher(store)  # deliveries go on while any worker or API process lives
    log.info(
        "worker %s: ready on queue %r (%s: %s, %s)",
        name,
        settings.queue_name,
        info.name,
        info.model,
        info.device,
    )
    try:
        rq_worker.work(burst=burst, logging_level=logging.getLevelName(log.getEffectiveLevel()))
    finally:
        sweeper.stop()
        webhooks.stop()
        store.forget_worker(name)
        log.info("worker %s: stopped", name)
    return 0
