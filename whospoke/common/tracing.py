"""OpenTelemetry tracing of gRPC calls, exported by OTLP only when an endpoint is set.

One `Process` crosses three services; a trace shows where its time went (queue,
decode, the transcriber, the diarizer) without reading three logs. Every gRPC
call a server answers gets a SERVER span and every call the orchestrator makes
to a backend a CLIENT span; the W3C trace context travels in the call's metadata,
so a backend's span is a child of the orchestrator's call, itself a child of the
`Process` span: one trace per `Process`. A durable job's attempt gets its own
span (`job_span`), the parent of its backend calls. Health checks and reflection
are left out: probes would bury the calls that matter.

Tracing is off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and `OTEL_SDK_DISABLED` is not
true): then no provider is made, no interceptor is installed, and the SDK and the
exporter are not even imported, so calls cost what they did without tracing.
The provider is this module's, not OpenTelemetry's global one, so that tests
install their own (`use`) without touching the process's.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grpc
from opentelemetry import trace

from whospoke.common.tracing_channel import TracedStreamsChannel

logger = logging.getLogger(__name__)

JOB_ID = "whospoke.job_id"
"""Span attribute: the durable job's id (Jobs calls naming one, and each attempt's span)."""
JOB_ATTEMPT = "whospoke.job_attempt"
"""Span attribute: which attempt of the job a `whospoke.job` span is (1 the first)."""
UPLOAD_ID = "whospoke.upload_id"
"""Span attribute: the upload a `Process` reads its audio from (none for inline audio)."""
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_EXCLUDED_PREFIXES = ("grpc.health.v1.", "grpc.reflection.")

_provider: trace.TracerProvider | None = None


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces: an OTLP endpoint, and the SDK not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def setup(service: str) -> trace.TracerProvider | None:
    """The provider for `service` ("orchestrator"), made once per process when `wanted`.

    Spans go to the OTLP/gRPC exporter, which reads the standard `OTEL_EXPORTER_OTLP_*`
    variables itself, in batches (its thread, never the event loop). The service name
    is `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`), else
    `whospoke-<service>`. Returns None, having done nothing, when tracing is off.
    """
    global _provider
    if _provider is not None or not wanted():
        return _provider
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: f"whospoke-{service}"}))
    provider = TracerProvider(resource=resource)  # flushed and shut down at exit
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    logger.info("%s: tracing on, exported by OTLP", service)
    use(provider)
    return provider


def use(provider: trace.TracerProvider | None) -> None:
    """Report spans to `provider` from now on (None: tracing off); servers started and
    channels opened before keep what they had."""
    global _provider
    _provider = provider


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The interceptor that opens a SERVER span per call, continuing the caller's trace;
    none when tracing is off. Placed first, so its span covers the others' work."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=_provider, filter_=_traced
    )
    return [interceptor]


def client_channel(
    target: str, credentials: grpc.ChannelCredentials | None, options: Sequence[tuple[str, Any]]
) -> grpc.aio.Channel:
    """A channel to `target` (TLS when `credentials`) whose calls get a CLIENT span and send
    the trace context; exactly a plain channel when tracing is off. Stream-stream calls are
    traced by `TracedStreamsChannel`, not by an interceptor (its docstring says why)."""
    interceptors: list[grpc.aio.ClientInterceptor] = []
    if _provider is not None:
        from opentelemetry.instrumentation.grpc import aio_client_interceptors

        made = aio_client_interceptors(  # type: ignore[no-untyped-call]
            tracer_provider=_provider, filter_=_traced
        )
        interceptors = [
            i for i in made if not isinstance(i, grpc.aio.StreamStreamClientInterceptor)
        ]
    if credentials is not None:
        channel = grpc.aio.secure_channel(
            target, credentials, options=options, interceptors=interceptors or None
        )
    else:
        channel = grpc.aio.insecure_channel(
            target, options=options, interceptors=interceptors or None
        )
    if _provider is None:
        return channel
    return TracedStreamsChannel(channel, _provider.get_tracer(__name__))


@contextlib.contextmanager
def job_span(job_id: str, attempt: int) -> Iterator[None]:
    """An INTERNAL span around one attempt of a durable job, the parent of its backend
    calls (it runs in the queue's worker, outside any call); nothing when tracing is off."""
    if _provider is None:
        yield
        return
    tracer = _provider.get_tracer(__name__)
    attributes: dict[str, str | int] = {JOB_ID: job_id, JOB_ATTEMPT: attempt}
    with tracer.start_as_current_span("whospoke.job", attributes=attributes):
        yield


def annotate(key: str, value: str) -> None:
    """Set an attribute on the current span (the call's SERVER span in a servicer); a
    no-op when there is none, as when tracing is off."""
    if value:
        trace.get_current_span().set_attribute(key, value)


def _traced(details: Any) -> bool:
    """Whether a call gets a span: all but health checks and reflection."""
    method = details.method
    if isinstance(method, bytes):  # grpc.aio client call details carry bytes
        method = method.decode()
    return not str(method).lstrip("/").startswith(_EXCLUDED_PREFIXES)
