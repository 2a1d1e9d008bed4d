"""Prometheus metrics of the durable job queue, beside the shared service metrics.

Queue counts are over every replica sharing the store (each replica exports the
same values; aggregate with `max`, not `sum`); finished jobs and running-here are
this replica's own.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from orchestrator.store import JobRecord, JobState, QueueStats
from whospoke.common.metrics import Metrics

STATES = ("queued", "running", "succeeded", "failed", "cancelled")


class QueueMetrics:
    def __init__(self, metrics: Metrics) -> None:
        registry, self._service = metrics.registry, metrics.service
        self.jobs = Gauge(
            "whospoke_job_queue_jobs",
            "Durable jobs in the store by state (all replicas; finished ones until they expire).",
            ["service", "state"],
            registry=registry,
        )
        self.oldest_queued = Gauge(
            "whospoke_job_queue_oldest_queued_seconds",
            "Age of the oldest queued durable job; 0 when none waits.",
            ["service"],
            registry=registry,
        )
        self.average_wait = Gauge(
            "whospoke_job_queue_average_wait_seconds",
            "Mean submission-to-start time of the durable jobs kept.",
            ["service"],
            registry=registry,
        )
        self.average_processing = Gauge(
            "whospoke_job_queue_average_processing_seconds",
            "Mean start-to-end time of the durable jobs kept.",
            ["service"],
            registry=registry,
        )
        self.running_here = Gauge(
            "whospoke_job_queue_running_here",
            "Durable jobs this replica is running.",
            ["service"],
            registry=registry,
        )
        self.finished = Counter(
            "whospoke_jobs_finished",
            "Durable jobs this replica ended, by final state.",
            ["service", "state"],
            registry=registry,
        )

    def update(self, stats: QueueStats, running_here: int) -> None:
        for state in STATES:
            self.jobs.labels(self._service, state).set(getattr(stats, state))
        self.oldest_queued.labels(self._service).set(stats.oldest_queued_seconds)
        self.average_wait.labels(self._service).set(stats.average_queue_seconds)
        self.average_processing.labels(self._service).set(stats.average_processing_seconds)
        self.running_here.labels(self._service).set(running_here)

    def ended(self, record: JobRecord, state: JobState) -> None:
        self.finished.labels(self._service, state.name.lower()).inc()
