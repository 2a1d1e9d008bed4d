"""Prometheus metrics of the HTTP side, named like the gRPC services' own.

`whospoke_http_requests_total` and `whospoke_http_request_duration_seconds`, by route
template (not raw path, so job ids do not explode the label set), method and status;
the `service` label is "gateway", as `whospoke_grpc_*` carry theirs.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from whospoke.common.metrics import LATENCY_BUCKETS

SERVICE = "gateway"


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ["service", "route", "method"]
        self.requests = Counter(
            "whospoke_http_requests",
            "Finished HTTP requests by route, method and status.",
            [*labels, "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "whospoke_http_request_duration_seconds",
            "Wall time of HTTP requests, from request to the end of the response body.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "whospoke_http_requests_in_flight",
            "HTTP requests being handled now (streams included).",
            ["service"],
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "whospoke_audio_processed_seconds",
            "Seconds of audio fully processed.",
            ["service"],
            registry=self.registry,
        )


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def recorded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        method = scope["method"]
        gauge = self.metrics.in_flight.labels(SERVICE)
        gauge.inc()
        try:
            await self.app(scope, receive, recorded_send)
        finally:
            gauge.dec()
            route = _route(scope)
            self.metrics.requests.labels(SERVICE, route, method, str(status[0])).inc()
            elapsed = time.perf_counter() - started
            self.metrics.latency.labels(SERVICE, route, method).observe(elapsed)


def _route(scope: Scope) -> str:
    """The matched route's template, such as /v1/jobs/{job_id}; "unmatched" otherwise."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
