"""Server interceptor: errors → status codes, and per-RPC metrics, for every method.

Servicers raise `WhospokeError`s and never call `context.abort` for domain errors;
this interceptor turns them into a status (unexpected exceptions become INTERNAL,
logged with their traceback, with no internals in the message) and counts every
RPC by method and final code. A request message that does not parse is the
client's fault, not a server bug: it becomes INVALID_ARGUMENT with a short
message and one WARNING line, whether it is a unary request or one message of a
stream. A call the client abandoned counts as CANCELLED, also when it left
while the server was between two responses.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from whospoke.common.errors import InvalidArgument, WhospokeError
from whospoke.common.metrics import Metrics

logger = logging.getLogger(__name__)

Behavior = Callable[..., Any]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Wraps each async handler with the error map and the metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        for kind, factory in _FACTORIES.items():
            behavior = getattr(handler, kind)
            if behavior is None:
                continue
            wrapped = self._wrap(behavior, handler.request_streaming, method)
            if wrapped is None:
                return handler
            return factory(
                wrapped,
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler

    def _wrap(self, behavior: Behavior, streaming: bool, method: str) -> Behavior | None:
        if inspect.isasyncgenfunction(behavior):
            return self._wrap_stream(_checked(behavior, streaming, method), method)
        if inspect.iscoroutinefunction(behavior):
            return self._wrap_unary(_checked(behavior, streaming, method), method)
        return None

    def _wrap_unary(self, behavior: Behavior, method: str) -> Behavior:
        async def unary(request: Any, context: Context) -> Any:
            with _Observed(self._metrics, method, context) as observed:
                try:
                    return await behavior(request, context)
                except BaseException as exc:
                    await observed.fail(exc)
                    raise

        return unary

    def _wrap_stream(self, behavior: Behavior, method: str) -> Behavior:
        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            with _Observed(self._metrics, method, context) as observed:
                try:
                    async for response in behavior(request, context):
                        yield response
                except BaseException as exc:
                    await observed.fail(exc)
                    raise

        return stream


class _Observed:
    """Times one RPC, tracks it in flight, and maps its failure to a status."""

    def __init__(self, metrics: Metrics, method: str, context: Context) -> None:
        self._metrics = metrics
        self._method = method
        self._context = context
        self._code: grpc.StatusCode | None = None

    def __enter__(self) -> _Observed:
        self._start = time.perf_counter()
        self._metrics.in_flight.labels(self._metrics.service, self._method).inc()
        return self

    async def fail(self, exc: BaseException) -> None:
        """Record the code for `exc`; abort with a mapped status when it is ours."""
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self._code = grpc.StatusCode.CANCELLED
        elif isinstance(exc, grpc.aio.AbortError):
            self._code = self._context.code() or grpc.StatusCode.UNKNOWN
        elif isinstance(exc, WhospokeError):
            self._code = exc.code
            await self._context.abort(exc.code, str(exc))
        elif isinstance(exc, Exception):
            logger.exception("unexpected error in %s", self._method)
            self._code = grpc.StatusCode.INTERNAL
            await self._context.abort(
                grpc.StatusCode.INTERNAL, f"internal error in {self._method}; see the server log"
            )

    def __exit__(self, *exc_info: object) -> None:
        service, method = self._metrics.service, self._method
        code = self._code or self._context.code()
        if code is None:
            code = grpc.StatusCode.CANCELLED if self._context.cancelled() else grpc.StatusCode.OK
        self._metrics.in_flight.labels(service, method).dec()
        self._metrics.requests.labels(service, method, _code_name(code)).inc()
        self._metrics.latency.labels(service, method).observe(time.perf_counter() - self._start)


class _Malformed:
    """Stands for a request message that did not parse."""


MALFORMED = _Malformed()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """The deserializer, returning `MALFORMED` instead of raising on bad bytes.

    gRPC would report a raising deserializer as UNKNOWN (with the exception's
    class name) on unary calls and as INTERNAL on streams.
    """
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:
            return MALFORMED

    return parse


def _checked(behavior: Behavior, streaming: bool, method: str) -> Behavior:
    """`behavior` seeing only parsed requests; a malformed one ends the call."""

    def refuse(request: Any) -> Any:
        if request is MALFORMED:
            logger.warning("malformed request message on %s refused", method)
            raise InvalidArgument(f"{method}: malformed request message (not valid protobuf)")
        return request

    async def parsed(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            yield refuse(request)

    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            request = parsed(request) if streaming else refuse(request)
            async for response in behavior(request, context):
                yield response

        return stream

    async def unary(request: Any, context: Context) -> Any:
        request = parsed(request) if streaming else refuse(request)
        return await behavior(request, context)

    return unary


def _code_name(code: object) -> str:
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return str(code)


_FACTORIES: dict[str, Callable[..., Handler]] = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}
