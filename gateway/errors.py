"""The gateway's one place where failures become HTTP responses, in OpenAI's error JSON.

`{"error": {"message", "type", "param", "code"}}` is what the OpenAI SDKs parse into
their typed exceptions (`BadRequestError` for 400, `AuthenticationError` for 401,
`RateLimitError` for 429, ...), so the status follows the gRPC code the orchestrator
gave, and `param` names the form field at fault where the message names one.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
"""The `Retry-After` hint of a 429: a queue slot frees when a job ends, which the gateway
cannot foresee; a few seconds keeps clients from hammering a full server."""

_STATUS: dict[grpc.StatusCode, tuple[int, str, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error", "invalid_value"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "invalid_request_error", "invalid_value"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "invalid_request_error", "invalid_api_key"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error", "permission_denied"),
    grpc.StatusCode.NOT_FOUND: (404, "invalid_request_error", "not_found"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "invalid_request_error", "conflict"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "invalid_request_error", "conflict"),
    grpc.StatusCode.ABORTED: (409, "invalid_request_error", "conflict"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error", "rate_limit_exceeded"),
    grpc.StatusCode.CANCELLED: (503, "server_error", "service_unavailable"),
    grpc.StatusCode.UNAVAILABLE: (503, "server_error", "service_unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "server_error", "timeout"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "server_error", "not_implemented"),
}
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\[\]]*): ")
_PARAMS = {
    "audio": "file",
    "upload_id": "file",
    "upload": "file",
    "initial_prompt": "prompt",
    "webhook_url": "callback_url",
}
"""Contract field names as the HTTP form calls them."""


class ApiError(Exception):
    """An error response: status, OpenAI error body and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error = {"message": self.message, "type": self.type, "param": self.param}
        return {"error": {**error, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(param: str, message: str, code: str = "invalid_value") -> ApiError:
    """A 400 naming the form field, its message starting with the field like gRPC's do."""
    return ApiError(400, f"{param}: {message}", param=param, code=code)


def from_rpc(error: grpc.aio.AioRpcError) -> ApiError:
    """The HTTP form of a failed orchestrator call (its message kept, the orchestrator named
    when it could not be reached)."""
    code = error.code()
    details = error.details() or code.name
    status, kind, short = _STATUS.get(code, (500, "server_error", "internal_error"))
    headers: dict[str, str] = {}
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than the limit" in details:
        status, kind, short = 413, "invalid_request_error", "request_too_large"
    elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if code == grpc.StatusCode.UNAVAILABLE and not _FIELD.match(details):
        details = f"orchestrator: unavailable: {details}"
    param = None
    if status in (400, 413) and (match := _FIELD.match(details)):
        last = match.group(1).split(".")[-1]
        param = _PARAMS.get(last, last)
    return ApiError(status, details, kind, param, short, headers)


def install(app: FastAPI) -> None:
    """Every error leaves the gateway in OpenAI's shape, FastAPI's own included."""

    async def api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return error.response()

    async def rpc_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, grpc.aio.AioRpcError)
        return from_rpc(error).response()

    async def validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        first = error.errors()[0] if error.errors() else {}
        loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
        param = loc[-1] if loc else None
        message = str(first.get("msg", "invalid request"))
        text = f"{param}: {message}" if param else message
        return ApiError(400, text, param=param, code="invalid_value").response()

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        kind = "invalid_request_error" if error.status_code < 500 else "server_error"
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
        headers = dict(error.headers or {})
        return ApiError(error.status_code, str(error.detail), kind, None, code, headers).response()

    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error in %s %s", request.method, request.url.path)
        return ApiError(500, "internal error in the gateway", "server_error").response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(grpc.aio.AioRpcError, rpc_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
