"""Prometheus metrics, the same names in every service.

Each server owns a `Metrics` with its own registry (so several servers can live in
one test process) and exposes it over HTTP on its own port. Names follow the
Prometheus conventions: base units, `_total` for counters, `_seconds` for time.
The `service` label tells the transcriber, diarizer and orchestrator apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)


class Metrics:
    """The metrics of one service process."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        labels = ["service", "method"]
        self.requests = Counter(
            "whospoke_grpc_requests",
            "Finished RPCs by method and status code.",
            [*labels, "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "whospoke_grpc_request_duration_seconds",
            "Wall time of RPCs, from call to status.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "whospoke_grpc_requests_in_flight",
            "RPCs being handled now, queued ones included.",
            labels,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "whospoke_audio_processed_seconds",
            "Seconds of audio fully processed.",
            ["service"],
            registry=self.registry,
        )
        self.real_time_factor = Histogram(
            "whospoke_real_time_factor",
            "Processing wall time divided by audio duration, per job.",
            ["service"],
            buckets=RTF_BUCKETS,
            registry=self.registry,
        )
        self.jobs_running = Gauge(
            "whospoke_jobs_running",
            "Jobs holding a concurrency slot.",
            ["service"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "whospoke_queue_depth",
            "Jobs waiting for a concurrency slot.",
            ["service"],
            registry=self.registry,
        )
        self.model_load_seconds = Gauge(
            "whospoke_model_load_seconds",
            "Time the service took to load its model(s) at start-up.",
            ["service"],
            registry=self.registry,
        )

    def record_job(self, audio_seconds: float, processing_seconds: float) -> None:
        """Count a finished job's audio and its real-time factor."""
        self.audio_seconds.labels(self.service).inc(audio_seconds)
        if audio_seconds > 0:
            self.real_time_factor.labels(self.service).observe(processing_seconds / audio_seconds)

    def set_load(self, running: int, queued: int) -> None:
        """Limiter callback: publish running and queued job counts."""
        self.jobs_running.labels(self.service).set(running)
        self.queue_depth.labels(self.service).set(queued)

    def serve_http(self, host: str, port: int) -> None:
        """Expose /metrics on host:port (port 0 disables it)."""
        if port:
            start_http_server(port, addr=host, registry=self.registry)
