"""The one place where failures become gRPC status codes.

Services raise these exceptions; the server interceptor turns them into a status
code and a message. Errors from downstream services are translated into the same
tree (`from_rpc_error`) so that no raw `AioRpcError` reaches a client.
"""

from __future__ import annotations

from dataclasses import dataclass

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


class AlreadyExists(WhospokeError):
    """A resource to create (an enrolled voice) exists already under that name."""

    code = grpc.StatusCode.ALREADY_EXISTS


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


class Internal(WhospokeError):
    """The service, or the deployment behind it, is broken: retrying will not help."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[WhospokeError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        ResourceExhausted,
        Unavailable,
        FailedPrecondition,
        DeadlineExceeded,
        Internal,
    )
}

_MISCONFIGURED = {
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNIMPLEMENTED,
}
"""Codes that blame the caller; from a backend, the caller is the orchestrator's configuration."""

_OUR_DEADLINE = "Deadline Exceeded"
"""gRPC's own text when the call's deadline (set by the orchestrator) ran out; a backend that
ends a call with DEADLINE_EXCEEDED itself says why in its own words, passed on unchanged."""


@dataclass(frozen=True)
class Backend:
    """A downstream service, as error messages name it."""

    name: str
    address: str = ""
    flag: str = ""
    """The flag that sets `address`, for messages that tell the operator what to fix."""


def from_rpc_error(error: grpc.aio.AioRpcError, backend: Backend | str) -> WhospokeError:
    """Translate a downstream failure into our error tree, keeping its kind.

    A client must be able to act on the code it gets: INVALID_ARGUMENT from a
    backend is still the client's mistake, RESOURCE_EXHAUSTED and UNAVAILABLE are
    still worth a retry, DEADLINE_EXCEEDED, FAILED_PRECONDITION, NOT_FOUND and
    INTERNAL keep their meaning. The message names the backend (and for
    UNAVAILABLE its address). Three codes would blame the wrong party if passed
    on: UNAUTHENTICATED, PERMISSION_DENIED and UNIMPLEMENTED from a backend mean
    the orchestrator's own credentials or backend address are wrong, which the
    client can neither fix nor outwait, so they become INTERNAL naming the
    flags to fix (UNAVAILABLE would make clients retry forever). CANCELLED from
    a backend (one shutting down) is UNAVAILABLE: our caller cancelled nothing.
    Every message starts with `<backend>: `, which clients use to tell a
    backend's failure from the orchestrator's own.
    """
    peer = backend if isinstance(backend, Backend) else Backend(backend)
    code = error.code()
    details = error.details() or code.name
    at = f" at {peer.address}" if peer.address else ""
    if code in _MISCONFIGURED:
        refused = f"{peer.address or 'it'} refused the orchestrator ({code.name}: {details})"
        return Internal(f"{peer.name}: {refused}; {_fix(peer, code)}")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return Unavailable(f"{peer.name}: unavailable{at}: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and details == _OUR_DEADLINE:
        return DeadlineExceeded(
            f"{peer.name}: {details} (it did not answer within the deadline the server "
            "allows it: --backend-deadline-seconds plus --backend-deadline-per-audio-second "
            "per second of audio)"
        )
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(f"{peer.name}: {details}")
    if code == grpc.StatusCode.UNKNOWN:
        return Internal(f"{peer.name}: {details}")
    passed = WhospokeError(f"{peer.name}: {details}")
    passed.code = code
    return passed


def _fix(peer: Backend, code: grpc.StatusCode) -> str:
    if code == grpc.StatusCode.UNIMPLEMENTED:
        flag = peer.flag or "its address"
        return f"the operator must point {flag} at the {peer.name} service"
    return (
        "the operator must fix the orchestrator's --backend-tls-ca/--backend-tls-cert/"
        f"--backend-tls-key, or the {peer.name}'s --auth-tokens (the orchestrator sends no "
        "bearer token to its backends)"
    )


def quoted(value: str, limit: int = 40) -> str:
    """`value` for an error message: repr'd and cut to `limit` characters.

    Messages travel in gRPC trailers, which clients cap (8 KiB by default); echoing
    an unbounded client string would turn the client's own error into
    RESOURCE_EXHAUSTED on its side.
    """
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


def error_for_code(code_name: str, message: str) -> WhospokeError:
    """Rebuild an error from a stored status code name (a durable job's failure), so a
    client watching the job gets the status `Process` would have ended with."""
    code = getattr(grpc.StatusCode, code_name, grpc.StatusCode.INTERNAL)
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message)
    error = WhospokeError(message)
    error.code = code
    return error
