"""Optional bearer-token authentication, shared by every server.

Calls must carry `authorization: Bearer <token>` with one of the configured tokens,
or they end with UNAUTHENTICATED before reaching the servicer. Health checks and
reflection stay open unless asked otherwise, so load balancers and grpcurl keep
working. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import grpc

logger = logging.getLogger(__name__)

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
DENIED = "missing or invalid bearer token (send the header `authorization: Bearer <token>`)"


def read_tokens(path: str, inline: str) -> tuple[str, ...]:
    """Tokens from a file (one per line, `#` comments) and a comma-separated string."""
    tokens = [t.strip() for t in inline.split(",")]
    if path:
        with open(path, encoding="utf-8") as file:
            tokens += [line.split("#", 1)[0].strip() for line in file]
    return tuple(t for t in tokens if t)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, tokens: Sequence[str], protect_health: bool = False) -> None:
        self._tokens = [t.encode() for t in tokens]
        self._protect_health = protect_health

    def _allowed(self, details: grpc.HandlerCallDetails) -> bool:
        if not self._protect_health and details.method.startswith(OPEN_PREFIXES):
            return True
        for key, value in details.invocation_metadata or ():
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                if scheme.lower() == "bearer":
                    given = token.strip().encode()
                    return any(hmac.compare_digest(given, t) for t in self._tokens)
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or self._allowed(handler_call_details):
            return handler
        logger.info("unauthenticated call to %s refused", handler_call_details.method)
        return _denial(handler)


async def _deny(request: Any, context: Context) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, DENIED)


async def _deny_stream(request: Any, context: Context) -> AsyncIterator[Any]:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, DENIED)
    yield None  # pragma: no cover - abort raises


def _denial(handler: Handler) -> Handler:
    """A handler of the same shape as `handler` that refuses the call."""
    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_deny, **serializers)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_deny_stream, **serializers)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(_deny, **serializers)
    return grpc.stream_stream_rpc_method_handler(_deny_stream, **serializers)


def client_identity(context: Context, trust_tokens: bool) -> str:
    """Who is calling, for per-client quotas: a digest of the bearer token, else the peer host.

    A token names a client only when the server checks tokens; otherwise anyone could
    invent one per call and escape the per-client limits.
    """
    if trust_tokens:
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str):
                token = value.partition(" ")[2].strip()
                return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
    peer = context.peer() or "unknown"
    host, _, port = peer.rpartition(":")
    return host if host and port.isdigit() else peer
