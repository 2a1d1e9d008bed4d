"""Backend failures reach the orchestrator's client with their kind, naming the backend.

The orchestrator talks to its backends over real gRPC here: scripted Transcriber
and Diarizer servers that end the call with a given status after the config and
one audio chunk, while the orchestrator still has most of a minute of audio to
send. That is the case where grpc.aio used to lose the backend's status (a write
pending on flow control failed, and the call reported INTERNAL "Internal error
from Core", which the orchestrator turned into a retryable UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from orchestrator.backends import BackendSettings, GrpcDiarizer, GrpcTranscriber
from tests.fakes import FakeDiarizer, FakeTranscriber, FakeTranscriptionEngine, serve, wav_bytes
from transcriber.config import ModelConfig, TranscriberConfig
from transcriber.server import build_spec as transcriber_spec
from whospoke.common.calls import stream_stream
from whospoke.common.config import ServerConfig
from whospoke.common.metrics import Metrics
from whospoke.common.server import start_server
from whospoke.v1 import diarizer_pb2, diarizer_pb2_grpc
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import transcriber_pb2 as tpb
from whospoke.v1 import transcriber_pb2_grpc as tpb_grpc

S = grpc.StatusCode
AUDIO_SECONDS = 60.0
"""About thirty 64 KB chunks: far more than HTTP/2 lets through before the abort."""


class ScriptedTranscriber(tpb_grpc.TranscriberServicer):
    """After the config and one chunk: ends the call with `code`, or (None) stops
    reading and answers nothing; with OK, reads everything and sends `responses`.
    `read` counts the messages of the latest call, `calls` the calls."""

    def __init__(
        self, code: grpc.StatusCode | None, details: str = "", responses: Any = ()
    ) -> None:
        self.code, self.details, self.responses = code, details, responses
        self.read = self.calls = 0
        self.holding, self.cancelled = asyncio.Event(), asyncio.Event()

    async def Transcribe(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        self.read, self.calls = 0, self.calls + 1
        async for _ in request_iterator:
            self.read += 1
            if self.read == 2 and self.code is None:
                self.holding.set()
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    self.cancelled.set()
                    raise
            if self.read == 2 and self.code != S.OK:
                await context.abort(self.code, self.details)
        for response in self.responses:
            yield response

    async def GetInfo(self, request: Any, context: Any) -> tpb.TranscriberInfo:
        return tpb.TranscriberInfo(model="scripted")


class ScriptedDiarizer(diarizer_pb2_grpc.DiarizerServicer):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        self.read = self.calls = 0

    async def Diarize(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        self.read, self.calls = 0, self.calls + 1
        async for _ in request_iterator:
            self.read += 1
            if self.read == 2:
                await context.abort(self.code, self.details)
        yield diarizer_pb2.DiarizeResponse()  # pragma: no cover - never reached

    async def GetInfo(self, request: Any, context: Any) -> diarizer_pb2.DiarizerInfo:
        return diarizer_pb2.DiarizerInfo(segmentation_model="scripted")


@asynccontextmanager
async def scripted(servicer: Any) -> AsyncIterator[str]:
    server = grpc.aio.server()
    if isinstance(servicer, ScriptedTranscriber):
        tpb_grpc.add_TranscriberServicer_to_server(servicer, server)
    else:
        diarizer_pb2_grpc.add_DiarizerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


@asynccontextmanager
async def transcriber_server(engine: FakeTranscriptionEngine) -> AsyncIterator[str]:
    """The real Transcriber servicer around a fake engine; yields its address."""
    config = TranscriberConfig(server=ServerConfig(port=0), model=ModelConfig(model="fake"))
    metrics = Metrics("transcriber")
    running = await start_server(config.server, transcriber_spec(config, engine, metrics), metrics)
    await running.set_serving(True)
    try:
        yield f"127.0.0.1:{running.port}"
    finally:
        await running.stop(0)


async def process(stub: Any, **options: Any) -> list[pb.ProcessEvent]:
    request = pb.ProcessRequest(
        audio=wav_bytes(AUDIO_SECONDS), options=pb.ProcessOptions(**options)
    )
    return [event async for event in stub.Process(request, timeout=20)]


async def status_of(stub: Any, **options: Any) -> tuple[grpc.StatusCode, str]:
    """The code and message a Process call failed with."""
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await process(stub, **options)
    return failure.value.code(), failure.value.details() or ""


PASSED_ON = [
    (S.INVALID_ARGUMENT, "config.language: unknown language code 'xx'"),
    (S.RESOURCE_EXHAUSTED, "stream queue full (2 queued); retry later"),
    (S.DEADLINE_EXCEEDED, "the backend's own deadline ran out"),
    (S.FAILED_PRECONDITION, "cannot load the model 'large'"),
    (S.INTERNAL, "internal error in Transcribe; see the server log"),
]


@pytest.mark.parametrize(("code", "details"), PASSED_ON)
async def test_a_transcriber_status_passes_through_in_kind(
    tmp_path: Path, code: grpc.StatusCode, details: str
) -> None:
    backend = ScriptedTranscriber(code, details)
    async with scripted(backend) as address:
        transcriber = GrpcTranscriber(BackendSettings(address))
        async with serve(transcriber, FakeDiarizer(), tmp_path) as stub:
            got, message = await status_of(stub)
        await transcriber.close()
    assert got == code
    assert message.startswith(f"transcriber: {details}")
    assert backend.read == 2  # it ended the call mid-stream


async def test_a_transcriber_unavailable_names_its_address(tmp_path: Path) -> None:
    backend = ScriptedTranscriber(S.UNAVAILABLE, "the model is loading")
    async with scripted(backend) as address:
        transcriber = GrpcTranscriber(BackendSettings(address))
        async with serve(transcriber, FakeDiarizer(), tmp_path) as stub:
            got, message = await status_of(stub)
        await transcriber.close()
    assert got == S.UNAVAILABLE
    assert message == f"transcriber: unavailable at {address}: the model is loading"
    assert backend.calls == 2  # UNAVAILABLE is tried once more (another replica may answer)


async def test_a_transcriber_that_is_down_is_unavailable_naming_its_address(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    transcriber = GrpcTranscriber(BackendSettings(address))
    async with serve(transcriber, FakeDiarizer(), tmp_path) as stub:
        got, message = await status_of(stub)
    await transcriber.close()
    assert got == S.UNAVAILABLE
    assert message.startswith(f"transcriber: unavailable at {address}: ")


@pytest.mark.parametrize(
    ("code", "flag"),
    [
        (S.UNAUTHENTICATED, "--backend-tls-cert"),
        (S.PERMISSION_DENIED, "--backend-tls-cert"),
        (S.UNIMPLEMENTED, "--transcriber"),
    ],
)
async def test_a_transcriber_refusing_the_orchestrator_is_internal_naming_the_flag(
    tmp_path: Path, code: grpc.StatusCode, flag: str
) -> None:
    """The client's request and token are fine; the server's configuration is not."""
    async with scripted(ScriptedTranscriber(code, "missing bearer token")) as address:
        transcriber = GrpcTranscriber(BackendSettings(address))
        async with serve(transcriber, FakeDiarizer(), tmp_path) as stub:
            got, message = await status_of(stub)
        await transcriber.close()
    assert got == S.INTERNAL
    assert message.startswith(f"transcriber: {address} refused the orchestrator")
    assert code.name in message and flag in message


async def test_the_orchestrators_own_deadline_for_a_backend(tmp_path: Path) -> None:
    async with scripted(ScriptedTranscriber(None)) as address:
        settings = BackendSettings(address, deadline_seconds=0.3, deadline_per_audio_second=0)
        transcriber = GrpcTranscriber(settings)
        async with serve(transcriber, FakeDiarizer(), tmp_path) as stub:
            got, message = await status_of(stub)
        await transcriber.close()
    assert got == S.DEADLINE_EXCEEDED
    assert message.startswith("transcriber: Deadline Exceeded")
    assert "--backend-deadline-seconds" in message


async def test_a_client_leaving_cancels_the_backend_call(tmp_path: Path) -> None:
    backend = ScriptedTranscriber(None)
    async with scripted(backend) as address:
        transcriber = GrpcTranscriber(BackendSettings(address))
        async with serve(transcriber, FakeDiarizer(), tmp_path) as stub:
            call = stub.Process(pb.ProcessRequest(audio=wav_bytes(AUDIO_SECONDS)), timeout=20)
            await asyncio.wait_for(backend.holding.wait(), 30)
            call.cancel()
            await asyncio.wait_for(backend.cancelled.wait(), 10)
        await transcriber.close()
    assert backend.read == 2


async def test_the_real_transcriber_rejecting_a_language_is_invalid_argument(
    tmp_path: Path,
) -> None:
    """Issue 19: `--language xx` came back as UNAVAILABLE "Internal error from Core"."""
    async with transcriber_server(FakeTranscriptionEngine()) as address:
        transcriber = GrpcTranscriber(BackendSettings(address))
        async with serve(transcriber, FakeDiarizer(), tmp_path) as stub:
            got, message = await status_of(stub, language="de")
        await transcriber.close()
    assert got == S.INVALID_ARGUMENT
    assert message == "transcriber: config.language: unknown language code 'de'"


DIARIZER_KINDS = [*PASSED_ON, (S.UNAVAILABLE, "the models are loading")]


@pytest.mark.parametrize(("code", "details"), DIARIZER_KINDS)
async def test_a_required_diarizer_status_passes_through_in_kind(
    tmp_path: Path, code: grpc.StatusCode, details: str
) -> None:
    backend = ScriptedDiarizer(code, details)
    async with scripted(backend) as address:
        diarizer = GrpcDiarizer(BackendSettings(address))
        async with serve(FakeTranscriber(), diarizer, tmp_path) as stub:
            got, message = await status_of(stub, require_diarization=True)
        await diarizer.close()
    assert got == code
    assert message.startswith("diarizer")
    assert details in message
    assert backend.read == 2


async def test_a_tolerated_diarizer_failure_is_a_warning_naming_its_kind(tmp_path: Path) -> None:
    async with scripted(ScriptedDiarizer(S.RESOURCE_EXHAUSTED, "queue full")) as address:
        diarizer = GrpcDiarizer(BackendSettings(address))
        async with serve(FakeTranscriber(), diarizer, tmp_path) as stub:
            events = await process(stub)
        await diarizer.close()
    warnings = [e.warning for e in events if e.HasField("warning")]
    assert [w.code for w in warnings] == ["diarization_failed"]
    assert "RESOURCE_EXHAUSTED: diarizer: queue full" in warnings[0].message
    assert events[-1].result.text  # the transcript still came


async def test_a_diarizer_invalid_argument_fails_the_job_even_when_tolerated(
    tmp_path: Path,
) -> None:
    details = "config.num_speakers: more speakers than the audio can hold"
    async with scripted(ScriptedDiarizer(S.INVALID_ARGUMENT, details)) as address:
        diarizer = GrpcDiarizer(BackendSettings(address))
        async with serve(FakeTranscriber(), diarizer, tmp_path) as stub:
            got, message = await status_of(stub)
        await diarizer.close()
    assert got == S.INVALID_ARGUMENT
    assert message == f"diarizer: {details}"


async def test_a_transcriber_warning_crosses_grpc_with_its_time_range(tmp_path: Path) -> None:
    warning = tpb.TranscriptionWarning(
        code="no_text", message="speech without text", start_seconds=29.0, end_seconds=36.5
    )
    responses = [
        tpb.TranscribeResponse(warning=warning),
        tpb.TranscribeResponse(summary=tpb.TranscriptionSummary(language="fr", model="m")),
    ]
    async with scripted(ScriptedTranscriber(S.OK, "", responses)) as address:
        transcriber = GrpcTranscriber(BackendSettings(address))
        async with serve(transcriber, FakeDiarizer(), tmp_path) as stub:
            events = await process(stub)
        await transcriber.close()
    warnings = [e.warning for e in events if e.HasField("warning")]
    assert [(w.code, w.message, w.start_seconds, w.end_seconds) for w in warnings] == [
        ("no_text", "speech without text", 29.0, 36.5)
    ]
    assert events[-1].result.language == "fr"


async def test_a_failure_reading_the_audio_is_raised_as_itself() -> None:
    """The orchestrator's own fault while sending is not disguised as a cancelled call."""

    async def requests() -> AsyncIterator[tpb.TranscribeRequest]:
        yield tpb.TranscribeRequest(config=tpb.TranscriptionConfig())
        raise OSError("spool file unreadable")

    backend = ScriptedTranscriber(S.OK)
    async with scripted(backend) as address, grpc.aio.insecure_channel(address) as channel:
        call = tpb_grpc.TranscriberStub(channel).Transcribe(timeout=10)
        with pytest.raises(OSError, match="spool file unreadable"):
            [r async for r in stream_stream(call, requests())]
        assert await call.code() == S.CANCELLED
