"""A client channel whose stream-stream calls are traced without a client interceptor.

grpc.aio runs every intercepted stream-stream call on a request iterator, even one
made without (`stub.Transcribe()` then `call.write`): its own task writes the
requests, and when the server ends the call while a write waits on flow control,
the status the server sent becomes INTERNAL (`whospoke.common.calls` explains the
case, which it avoids by writing itself). The OpenTelemetry stream-stream
interceptor would bring that back for every backend call once tracing is on. So
here the call is made exactly as without tracing, only with the trace context
added to its metadata, and its CLIENT span (the same name and attributes as the
instrumentation's) ends when the call does, with its status code. Unary and
server-streaming calls go through the channel's own interceptors.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

_ending: set[asyncio.Task[None]] = set()
"""Tasks recording a finished call's status on its span (kept from garbage collection)."""


class TracedStreamsChannel(grpc.aio.Channel):
    """`channel`, with a span per stream-stream call opened by `tracer`."""

    def __init__(self, channel: grpc.aio.Channel, tracer: trace.Tracer) -> None:
        self._channel = channel
        self._tracer = tracer

    def stream_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.StreamStreamMultiCallable[Any, Any]:
        inner = self._channel.stream_stream(  # type: ignore[call-arg]
            method, request_serializer, response_deserializer, _registered_method
        )
        return _TracedStreamStream(inner, method, self._tracer)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_unary(*args, **kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_stream(*args, **kwargs)

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_unary(*args, **kwargs)

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    async def __aenter__(self) -> TracedStreamsChannel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self._channel.close(None)


class _TracedStreamStream(grpc.aio.StreamStreamMultiCallable[Any, Any]):
    """Makes the call with the trace context in its metadata; its span ends with it."""

    def __init__(
        self, inner: grpc.aio.StreamStreamMultiCallable[Any, Any], method: str, tracer: trace.Tracer
    ) -> None:
        self._inner = inner
        self._method = method
        self._tracer = tracer

    def __call__(
        self,
        request_iterator: Any = None,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> grpc.aio.StreamStreamCall[Any, Any]:
        service, _, name = self._method.lstrip("/").partition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        span = self._tracer.start_span(self._method, kind=SpanKind.CLIENT, attributes=attributes)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        sent = grpc.aio.Metadata(*(metadata or ()), *carrier.items())
        try:
            call = self._inner(
                request_iterator, timeout, sent, credentials, wait_for_ready, compression
            )
        except BaseException as error:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
            span.end()
            raise
        call.add_done_callback(lambda done: _end_later(span, done))
        return call


def _end_later(span: trace.Span, call: Any) -> None:
    """End `span` with the status of `call`, which has just ended (its status is read by
    awaiting, which a done callback cannot)."""
    task = asyncio.ensure_future(_end(span, call))
    _ending.add(task)
    task.add_done_callback(_ending.discard)


async def _end(span: trace.Span, call: Any) -> None:
    try:
        code: grpc.StatusCode = await call.code()
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code != grpc.StatusCode.OK:
            details = await call.details()
            span.set_status(Status(StatusCode.ERROR, f"{code.name}: {details}"))
    finally:
        span.end()
