"""The one place where failures become gRPC status codes.

Services raise these exceptions; the server interceptor turns them into a status
code and a message. Errors from downstream services are translated into the same
tree (`from_rpc_error`) so that no raw `AioRpcError` reaches a client.
"""

from __future__ import annotations

import grpc


class WhospokeError(Exception):
    """Base of every error a client may see; the message is sent to the client."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidArgument(WhospokeError):
    """The request is malformed; the message names the bad field or input."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(WhospokeError):
    """A referenced resource (an upload, a model) does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class ResourceExhausted(WhospokeError):
    """A queue or size limit is reached; retrying later may work."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(WhospokeError):
    """The service or a backend cannot serve now (model not loaded, backend down)."""

    code = grpc.StatusCode.UNAVAILABLE


class FailedPrecondition(WhospokeError):
    """The request is valid but cannot run in the current state."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class DeadlineExceeded(WhospokeError):
    """A downstream call ran past its deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(WhospokeError):
    """The work was cancelled, by the client or by shutdown."""

    code = grpc.StatusCode.CANCELLED


_BY_CODE: dict[grpc.StatusCode, type[WhospokeError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        ResourceExhausted,
        Unavailable,
        FailedPrecondition,
        DeadlineExceeded,
        Cancelled,
    )
}


def from_rpc_error(error: grpc.aio.AioRpcError, backend: str) -> WhospokeError:
    """Translate a downstream failure, naming the backend, into our error tree.

    Codes that describe the backend's own trouble (UNKNOWN, INTERNAL, UNIMPLEMENTED,
    DATA_LOSS...) become UNAVAILABLE: for our caller the backend is not usable.
    """
    code = error.code()
    details = error.details() or code.name
    cls = _BY_CODE.get(code, Unavailable)
    return cls(f"{backend}: {details}")


def quoted(value: str, limit: int = 40) -> str:
    """`value` for an error message: repr'd and cut to `limit` characters.

    Messages travel in gRPC trailers, which clients cap (8 KiB by default); echoing
    an unbounded client string would turn the client's own error into
    RESOURCE_EXHAUSTED on its side.
    """
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"
