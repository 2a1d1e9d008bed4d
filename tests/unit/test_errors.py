"""Downstream gRPC errors keep their kind when translated, and name the backend."""

from __future__ import annotations

import grpc
import pytest

from whospoke.common.errors import Backend, from_rpc_error

TRANSCRIBER = Backend("transcriber", "10.0.0.7:50061", "--transcriber")
S = grpc.StatusCode


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(
    "code",
    [
        S.INVALID_ARGUMENT,
        S.NOT_FOUND,
        S.RESOURCE_EXHAUSTED,
        S.FAILED_PRECONDITION,
        S.INTERNAL,
        S.ALREADY_EXISTS,
        S.ABORTED,
        S.OUT_OF_RANGE,
        S.DATA_LOSS,
    ],
)
def test_the_clients_and_the_backends_faults_keep_their_code(code: grpc.StatusCode) -> None:
    error = from_rpc_error(_rpc_error(code, "config.language: unknown 'xx'"), TRANSCRIBER)
    assert error.code == code
    assert str(error) == "transcriber: config.language: unknown 'xx'"


def test_unavailable_names_the_backends_address() -> None:
    error = from_rpc_error(_rpc_error(S.UNAVAILABLE, "failed to connect"), TRANSCRIBER)
    assert error.code == S.UNAVAILABLE
    assert str(error) == "transcriber: unavailable at 10.0.0.7:50061: failed to connect"


def test_deadline_exceeded_names_the_flags_that_set_it() -> None:
    error = from_rpc_error(_rpc_error(S.DEADLINE_EXCEEDED, "Deadline Exceeded"), TRANSCRIBER)
    assert error.code == S.DEADLINE_EXCEEDED
    assert str(error).startswith("transcriber: Deadline Exceeded")
    assert "--backend-deadline-seconds" in str(error)

    own = from_rpc_error(_rpc_error(S.DEADLINE_EXCEEDED, "decoding took too long"), TRANSCRIBER)
    assert own.code == S.DEADLINE_EXCEEDED
    assert str(own) == "transcriber: decoding took too long"  # not blamed on our flags


@pytest.mark.parametrize(
    ("code", "flag"),
    [
        (S.UNAUTHENTICATED, "--backend-tls-cert"),
        (S.PERMISSION_DENIED, "--backend-tls-cert"),
        (S.UNIMPLEMENTED, "--transcriber"),
    ],
)
def test_the_orchestrators_misconfiguration_is_internal_naming_the_flag(
    code: grpc.StatusCode, flag: str
) -> None:
    """The client's own credentials are fine: UNAUTHENTICATED would blame them."""
    error = from_rpc_error(_rpc_error(code, "nope"), TRANSCRIBER)
    assert error.code == S.INTERNAL
    assert str(error).startswith(
        f"transcriber: 10.0.0.7:50061 refused the orchestrator ({code.name}"
    )
    assert flag in str(error)


@pytest.mark.parametrize(
    ("code", "expected"), [(S.CANCELLED, S.UNAVAILABLE), (S.UNKNOWN, S.INTERNAL)]
)
def test_codes_that_would_mislead_are_mapped(
    code: grpc.StatusCode, expected: grpc.StatusCode
) -> None:
    error = from_rpc_error(_rpc_error(code, ""), "diarizer")
    assert error.code == expected
    assert str(error).startswith("diarizer")
