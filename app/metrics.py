"""Prometheus metrics. Job counts and durations are kept in Redis by the workers, so every API replica
reports the same totals; this collector reads them at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from jobs.record import FINAL_STATES
from jobs.store import JobStore


class QueueCollector:
    def __init__(self, store: JobStore):
        self.store = store

    def collect(self):
        queue = GaugeMetricFamily("bootpig_queue_depth", "Jobs waiting for a worker.")
        queue.add_metric([], self.store.queue_length())
        yield queue
        workers = GaugeMetricFamily("bootpig_workers", "Live workers (fresh heartbeat).")
        workers.add_metric([], len(self.store.live_workers()))
        yield workers
        running = GaugeMetricFamily("bootpig_jobs_running", "Jobs a worker is running now.")
        running.add_metric([], self.store.redis.scard(self.store.running_key))
        yield running
        stats = self.store.stats()
        jobs = CounterMetricFamily("bootpig_jobs", "Jobs by final state.", labels=["state"])
        for state in FINAL_STATES:
            jobs.add_metric([state.value], stats.get(f"jobs_{state.value}", 0))
        yield jobs
        retried = CounterMetricFamily("bootpig_jobs_retried", "Jobs retried after their worker died.")
        retried.add_metric([], stats.get("jobs_retried", 0))
        yield retried
        for name, help_text in (
            ("job_seconds", "Compute time of finished jobs on a worker."),
            ("step_seconds", "Duration of one denoising step."),
        ):
            buckets, total = self.store.histogram(name)
            family = HistogramMetricFamily(f"bootpig_{name}", help_text)
            family.add_metric([], buckets, total)
            yield family


def build_registry(store: JobStore) -> tuple[CollectorRegistry, Counter]:
    """A registry per app (tests build several apps in one process); plus this replica's request counter."""
    registry = CollectorRegistry()
    registry.register(QueueCollector(store))
    submissions = Counter(
        "bootpig_submissions", "POST /generate answers of this API process.", ["outcome"], registry=registry
    )
    return registry, submissions
