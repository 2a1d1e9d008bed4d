"""gRPC clients of the transcriber and diarizer services, as domain event streams.

Each backend address may name several replicas (`ipv4:10.0.0.1:50061,10.0.0.2:50061`
or `dns:///transcriber:50061`); gRPC's `round_robin` policy spreads calls over
them, which is how one host with several GPUs (one replica per GPU) scales. A
restarted backend is reconnected within about two seconds (short reconnect backoff). Every
call has a deadline that grows with the audio's length; closing an event stream
early cancels the call, so a cancelled job stops work on the backends too.
A health check also asks the backend's `GetInfo` what it runs (models, device,
its GPU now), at the same time and with the same deadline; a backend that does
not answer is reported without them, never as a failure of the check.
Backend failures come out as our own errors of the same kind naming the backend
(`whospoke.common.errors.from_rpc_error`); the audio is written through
`whospoke.common.calls`, which keeps the status a backend sent when it ends a
call while audio is still being sent (grpc.aio would report INTERNAL instead).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orchestrator.domain import (
    AudioSource,
    BackendHealth,
    BackendInfo,
    DiarizationDone,
    DiarizationEvent,
    LiveTurns,
    Progressed,
    ReplicaHealth,
    TranscriptDone,
    TranscriptEvent,
)
from orchestrator.replicas import ReplicaChannels, parse_target, resolve
from whospoke.common import tracing
from whospoke.common.calls import stream_stream
from whospoke.common.errors import Backend, from_rpc_error
from whospoke.contract import diarization, transcription
from whospoke.contract.diarization import DiarizationOptions
from whospoke.contract.transcription import TranscriptionOptions
from whospoke.v1 import audio_pb2, diarizer_pb2, diarizer_pb2_grpc
from whospoke.v1 import transcriber_pb2 as tpb
from whospoke.v1 import transcriber_pb2_grpc as tpb_grpc

logger = logging.getLogger(__name__)

SEGMENTATION_DEFAULT = "pyannote/segmentation-3.0 (embedded)"
EMBEDDING_DEFAULT = "CAM++ 3D-Speaker zh-en common (embedded)"
"""The diarizer's embedded models, as it names them, for a diarizer that leaves them blank."""
SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
HEALTH_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class BackendSettings:
    """Where a backend is and how long calls to it may take."""

    target: str
    deadline_seconds: float = 120.0
    """Fixed part of every call's deadline (model queue, start-up)."""
    deadline_per_audio_second: float = 2.0
    """Added per second of audio: a backend slower than this is considered stuck."""
    max_message_bytes: int = 8 << 20
    chunk_seconds: float = 2.0
    credentials: grpc.ChannelCredentials | None = None
    server_name: str = ""

    def timeout(self, audio: AudioSource) -> float:
        return self.deadline_seconds + self.deadline_per_audio_second * audio.expected_seconds


def open_channel(settings: BackendSettings) -> grpc.aio.Channel:
    options: list[tuple[str, Any]] = [
        ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.min_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]
    if settings.server_name:
        options.append(("grpc.ssl_target_name_override", settings.server_name))
    return tracing.client_channel(settings.target, settings.credentials, options)


async def check_health(
    channel: grpc.aio.Channel, name: str, target: str, service: str
) -> BackendHealth:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        response = await stub.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=HEALTH_TIMEOUT_SECONDS
        )
    except grpc.aio.AioRpcError as error:
        return BackendHealth(name, target, False, f"{error.code().name}: {error.details()}")
    serving = response.status == health_pb2.HealthCheckResponse.SERVING
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return BackendHealth(name, target, serving, "" if serving else status)


async def _responses(
    call: Any, requests: AsyncIterator[Any], backend: Backend
) -> AsyncGenerator[Any, None]:
    """The call's responses while `requests` are sent; failures translated; the
    call cancelled if left early."""
    try:
        async with aclosing(stream_stream(call, requests)) as responses:
            async for response in responses:
                yield response
    except grpc.aio.AioRpcError as error:
        raise from_rpc_error(error, backend) from error


class _Backend:
    """A channel to one backend service (all its replicas) and its health check."""

    name = ""
    service = ""

    def __init__(self, settings: BackendSettings) -> None:
        self._settings = settings
        self._channel = open_channel(settings)
        self._peer = Backend(self.name, settings.target, f"--{self.name}")
        hosts, lookup = parse_target(settings.target)
        name = settings.server_name or (hosts[0][0] if lookup and hosts else "")
        self._replicas = ReplicaChannels(settings.credentials, name)

    async def close(self) -> None:
        await asyncio.gather(self._channel.close(), self._replicas.close())

    async def health(self) -> BackendHealth:
        """Its health, each replica's, and what it runs, asked at once (each within
        `HEALTH_TIMEOUT_SECONDS`)."""
        checked, info, replicas = await asyncio.gather(
            check_health(self._channel, self.name, self._settings.target, self.service),
            self._info(),
            self._replica_health(),
        )
        return replace(checked, info=info, replicas=replicas)

    async def _replica_health(self) -> tuple[ReplicaHealth, ...]:
        """Each replica the address resolves to now, checked directly."""
        try:
            addresses = await resolve(self._settings.target)
        except OSError as error:
            logger.debug("%s: cannot resolve %s: %s", self.name, self._settings.target, error)
            return ()
        await self._replicas.keep(addresses)
        checks = await asyncio.gather(
            *(
                check_health(self._replicas.channel(a), self.name, a, self.service)
                for a in addresses
            )
        )
        return tuple(ReplicaHealth(c.address, c.serving, c.detail) for c in checks)

    async def _info(self) -> BackendInfo:
        """What it runs; empty when `GetInfo` fails (the health check says why)."""
        try:
            return await self._describe()
        except grpc.aio.AioRpcError as error:
            logger.debug("%s GetInfo failed: %s", self.name, error.code().name)
            return BackendInfo()

    async def _describe(self) -> BackendInfo:
        raise NotImplementedError


class GrpcTranscriber(_Backend):
    name = "transcriber"
    service = tpb.DESCRIPTOR.services_by_name["Transcriber"].full_name

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self._stub = tpb_grpc.TranscriberStub(self._channel)

    async def served_model(self) -> str:
        """The Whisper model it serves, as its `GetInfo` names it."""
        try:
            info = await self._stub.GetInfo(
                tpb.GetTranscriberInfoRequest(), timeout=HEALTH_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, self._peer) from error
        return info.model

    async def _describe(self) -> BackendInfo:
        info = await self._stub.GetInfo(
            tpb.GetTranscriberInfoRequest(), timeout=HEALTH_TIMEOUT_SECONDS
        )
        device = device_name(info.device, info.device_index)
        return BackendInfo((info.model,), device, _stats(info, "gpu", self.name))

    async def transcribe(
        self, audio: AudioSource, options: TranscriptionOptions
    ) -> AsyncIterator[TranscriptEvent]:
        config = tpb.TranscribeRequest(config=transcription.options_to_pb(options))
        requests = _wrap(config, audio, self._settings.chunk_seconds, tpb.TranscribeRequest)
        call = self._stub.Transcribe(timeout=self._settings.timeout(audio))
        async with aclosing(_responses(call, requests, self._peer)) as responses:
            async for response in responses:
                kind = response.WhichOneof("response")
                if kind == "segment":
                    yield transcription.segment_from_pb(response.segment)
                elif kind == "progress":
                    yield Progressed(response.progress.transcribed_seconds)
                elif kind == "warning":
                    yield transcription.warning_from_pb(response.warning)
                elif kind == "summary":
                    summary = response.summary
                    device = _stats(summary, "device", self.name)
                    yield TranscriptDone(summary.language, summary.model, device)


class GrpcDiarizer(_Backend):
    name = "diarizer"
    service = diarizer_pb2.DESCRIPTOR.services_by_name["Diarizer"].full_name

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self._stub = diarizer_pb2_grpc.DiarizerStub(self._channel)

    async def models(self) -> tuple[str, str]:
        try:
            info = await self._stub.GetInfo(
                diarizer_pb2.GetDiarizerInfoRequest(), timeout=HEALTH_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, self._peer) from error
        return info.segmentation_model, info.embedding_model

    async def _describe(self) -> BackendInfo:
        info = await self._stub.GetInfo(
            diarizer_pb2.GetDiarizerInfoRequest(), timeout=HEALTH_TIMEOUT_SECONDS
        )
        models = (
            info.segmentation_model or SEGMENTATION_DEFAULT,
            info.embedding_model or EMBEDDING_DEFAULT,
        )
        gpu = _stats(info, "gpu", self.name)
        device = device_name(info.device, None if gpu is None else gpu.gpu_index)
        return BackendInfo(models, device, gpu)

    async def diarize(
        self, audio: AudioSource, options: DiarizationOptions
    ) -> AsyncIterator[DiarizationEvent]:
        config = diarizer_pb2.DiarizeRequest(config=diarization.options_to_pb(options))
        requests = _wrap(config, audio, self._settings.chunk_seconds, diarizer_pb2.DiarizeRequest)
        call = self._stub.Diarize(timeout=self._settings.timeout(audio))
        async with aclosing(_responses(call, requests, self._peer)) as responses:
            async for response in responses:
                kind = response.WhichOneof("response")
                if kind == "progress":
                    yield Progressed(response.progress.analysed_seconds)
                elif kind == "live":
                    live = diarization.live_turns_from_pb(response.live)
                    yield LiveTurns(live.exclusive_turns, live.until)  # words: one speaker each
                else:
                    output = diarization.output_from_pb(response.result)
                    yield DiarizationDone(output, _stats(response.result, "device", self.name))


def _stats(message: Any, name: str, backend: str) -> audio_pb2.DeviceStats | None:
    """The GPU statistics in field `name` of a message, named after `backend`; None when
    absent (the backend runs on the CPU)."""
    if not message.HasField(name):
        return None
    device = audio_pb2.DeviceStats()
    device.CopyFrom(getattr(message, name))
    device.backend = backend
    return device


def device_name(kind: str, index: int | None) -> str:
    """ "cpu", or "cuda:N" when the CUDA device's index is known (the diarizer sends it
    only with its GPU statistics)."""
    if kind != "cuda" or index is None:
        return kind
    return f"cuda:{index}"


async def _wrap(
    config: Any, audio: AudioSource, seconds: float, message: Any
) -> AsyncIterator[Any]:
    """The request stream: the config message, then the audio in chunks read as sent."""
    yield config
    async for chunk in audio.chunks(seconds):
        yield message(audio=chunk)
