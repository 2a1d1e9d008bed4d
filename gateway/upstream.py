"""The gateway's gRPC side: one channel to the orchestrator, its stubs, and the calls the
HTTP routes share (audio in, events out, the served models).

Every call carries the HTTP caller's own `Authorization` header as gRPC metadata, so the
orchestrator decides who may do what, with the same tokens as for gRPC clients; the
gateway's own token (optional) is only used for the anonymous operational view. Every call
has a deadline, and a call whose HTTP request goes away is cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc
from starlette.datastructures import UploadFile

from gateway.config import GatewayConfig, UpstreamConfig
from gateway.errors import ApiError
from whospoke.common import tracing
from whospoke.v1 import jobs_pb2_grpc
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

Metadata = tuple[tuple[str, str], ...]
UPLOAD_CHUNK = 1 << 20
MAX_MESSAGE_BYTES = 64 << 20
WHISPER_ALIAS = "whisper-1"


def caller_metadata(authorization: str | None) -> Metadata:
    """The caller's `Authorization` header as gRPC metadata (nothing when absent)."""
    if not authorization:
        return ()
    if not authorization.isascii() or not authorization.isprintable():
        raise ApiError(401, "Authorization: not a valid header value", code="invalid_api_key")
    return (("authorization", authorization.strip()),)


def _read(path: str) -> bytes | None:
    return Path(path).expanduser().read_bytes() if path else None


def served_models(status: pb.OrchestratorStatus) -> tuple[str, ...]:
    """The transcriber pools' models, the default first: the names `model` selects."""
    names = (b.pool or next(iter(b.models), "") for b in status.backends if b.name == "transcriber")
    return tuple(name for name in names if name)


class Upstream:
    """The orchestrator as the gateway sees it."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._channel: grpc.aio.Channel | None = None
        self._models: tuple[float, tuple[str, ...]] = (0.0, ())

    async def open(self) -> None:
        up: UpstreamConfig = self.config.upstream
        options: list[tuple[str, str | int]] = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        if up.tls_ca or up.tls_cert or up.tls_server_name:
            ca, cert, key = await asyncio.to_thread(
                lambda: (_read(up.tls_ca), _read(up.tls_cert), _read(up.tls_key))
            )
            if up.tls_server_name:
                options.append(("grpc.ssl_target_name_override", up.tls_server_name))
            credentials = grpc.ssl_channel_credentials(ca, key, cert)
            self._channel = tracing.client_channel(up.address, credentials, options)
        else:
            self._channel = tracing.client_channel(up.address, None, options)

    async def close(self, grace: float | None = None) -> None:
        if self._channel is not None:
            await self._channel.close(grace)

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            raise RuntimeError("Upstream.open() was not awaited")
        return self._channel

    @property
    def orchestrator(self) -> pb_grpc.OrchestratorAsyncStub:
        return pb_grpc.OrchestratorStub(self.channel)

    @property
    def jobs(self) -> jobs_pb2_grpc.JobsAsyncStub:
        return jobs_pb2_grpc.JobsStub(self.channel)

    @property
    def health(self) -> Any:
        return health_pb2_grpc.HealthStub(self.channel)

    @property
    def own_metadata(self) -> Metadata:
        token = self.config.upstream.token
        return (("authorization", f"Bearer {token}"),) if token else ()

    @property
    def timeout(self) -> float:
        return self.config.upstream.call_timeout_seconds

    async def status(self, metadata: Metadata) -> pb.OrchestratorStatus:
        status: pb.OrchestratorStatus = await self.orchestrator.GetStatus(
            pb.GetStatusRequest(), metadata=metadata, timeout=self.timeout
        )
        models = served_models(status)
        if models:
            self._models = (time.monotonic(), models)
        return status

    async def served_models(self, metadata: Metadata) -> tuple[str, ...]:
        """The transcription models served, from a status at most a few seconds old."""
        fetched, models = self._models
        if not models or time.monotonic() - fetched > self.config.status_cache_seconds:
            await self.status(metadata)
            models = self._models[1]
        return models

    async def check_model(self, model: str, metadata: Metadata) -> None:
        """404 `model_not_found` unless `model` is served (or is the `whisper-1` alias)."""
        if model == WHISPER_ALIAS:
            return
        served = await self.served_models(metadata)
        if model not in served:
            known = ", ".join([*served, WHISPER_ALIAS]) or WHISPER_ALIAS
            raise ApiError(
                404,
                f"model: {model!r} is not served here (served: {known})",
                param="model",
                code="model_not_found",
            )

    async def source(self, file: UploadFile, metadata: Metadata) -> tuple[bytes, str]:
        """The file's bytes to send inline, or ("", upload_id) after uploading it in chunks."""
        size = file.size if file.size is not None else 0
        if size <= self.config.inline_bytes:
            return await file.read(), ""
        name = file.filename or ""

        async def chunks() -> AsyncIterator[pb.UploadChunk]:
            first = True
            while data := await file.read(UPLOAD_CHUNK):
                yield pb.UploadChunk(data=data, filename=name if first else "")
                first = False

        response: pb.UploadResponse = await self.orchestrator.Upload(
            chunks(), metadata=metadata, timeout=self.config.request_timeout_seconds
        )
        return b"", response.upload_id

    async def forget(self, upload_id: str, metadata: Metadata) -> None:
        """Delete an upload the gateway made for one request (best effort)."""
        if upload_id:
            with suppress(grpc.aio.AioRpcError):
                await self.orchestrator.DeleteUpload(
                    pb.DeleteUploadRequest(upload_id=upload_id),
                    metadata=metadata,
                    timeout=self.timeout,
                )

    async def process(
        self, request: pb.ProcessRequest, metadata: Metadata
    ) -> AsyncGenerator[pb.ProcessEvent, None]:
        """The `Process` events; the call is cancelled when the consumer stops early."""
        call = self.orchestrator.Process(
            request, metadata=metadata, timeout=self.config.request_timeout_seconds
        )
        try:
            async for event in call:
                yield event
        finally:
            call.cancel()
