"""Downstream gRPC errors are translated into our error tree, naming the backend."""

from __future__ import annotations

import grpc
import pytest

from whospoke.common.errors import (
    DeadlineExceeded,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
    from_rpc_error,
)


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.INTERNAL, Unavailable),
        (grpc.StatusCode.UNKNOWN, Unavailable),
    ],
)
def test_codes_are_translated(code: grpc.StatusCode, expected: type[Exception]) -> None:
    error = from_rpc_error(_rpc_error(code, "boom"), "transcriber")
    assert type(error) is expected
    assert str(error) == "transcriber: boom"
