"""What a client stream may cost: idle streams, tiny chunks, malformed messages, cancels.

Real servers on loopback with fake engines. Each case asserts the status code,
the message, and that the service still serves afterwards (its only slot free).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import numpy as np
import pytest
from prometheus_client import generate_latest

from diarizer.config import DiarizerConfig
from diarizer.engine import DiarizerModelConfig
from diarizer.server import build_spec as diarizer_spec
from tests.fakes import FakeDiarizationEngine as FakeDiarizerEngine
from tests.fakes import FakeDiarizer, FakeTranscriber, harness, wav_bytes
from tests.fakes import FakeTranscriptionEngine as FakeTranscriberEngine
from transcriber.config import ModelConfig, TranscriberConfig
from transcriber.server import build_spec as transcriber_spec
from whospoke.common.audio import SAMPLE_RATE, iter_chunks
from whospoke.common.config import ServerConfig
from whospoke.common.interceptor import ServiceInterceptor
from whospoke.common.metrics import Metrics
from whospoke.common.server import start_server
from whospoke.v1 import audio_pb2, diarizer_pb2, transcriber_pb2
from whospoke.v1 import orchestrator_pb2 as pb

BACKENDS = ["transcriber", "diarizer"]
PROTOCOLS: dict[str, tuple[str, Any, Any, Any]] = {
    "transcriber": (
        "/whospoke.v1.Transcriber/Transcribe",
        transcriber_pb2.TranscribeRequest,
        transcriber_pb2.TranscribeResponse,
        transcriber_pb2.TranscriptionConfig(),
    ),
    "diarizer": (
        "/whospoke.v1.Diarizer/Diarize",
        diarizer_pb2.DiarizeRequest,
        diarizer_pb2.DiarizeResponse,
        diarizer_pb2.DiarizationConfig(),
    ),
}
"""Each backend's streaming method: path, request and response types, an empty config."""
GARBAGE = b"\x0a\xff\xff\xff\xff\x0f"
"""Not a protobuf message: a length-delimited field whose length never ends."""


@dataclass
class Backend:
    """One backend service and how to speak its streaming method."""

    call: Callable[..., Any]
    channel: grpc.aio.Channel
    method: str
    config: Any
    request: Callable[..., Any]

    def audio(self, seconds: float, chunk: float = 1.0) -> list[Any]:
        samples = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
        return [self.request(audio=c) for c in iter_chunks(samples, chunk)]

    async def run(self, requests: list[Any]) -> list[Any]:
        async def stream() -> AsyncIterator[Any]:
            for request in requests:
                yield request

        return [r async for r in self.call(stream(), timeout=10)]


@asynccontextmanager
async def backend(kind: str, idle: float = 30.0) -> AsyncIterator[Backend]:
    server = ServerConfig(port=0, stream_idle_seconds=idle)
    metrics = Metrics(kind)
    if kind == "transcriber":
        t_config = TranscriberConfig(server=server, model=ModelConfig(model="fake"))
        spec = transcriber_spec(t_config, FakeTranscriberEngine(), metrics)
    else:
        d_config = DiarizerConfig(server=server, model=DiarizerModelConfig())
        spec = diarizer_spec(d_config, FakeDiarizerEngine(), metrics)
    running = await start_server(server, spec, metrics)
    await running.set_serving(True)
    method, request, response, config = PROTOCOLS[kind]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        call = channel.stream_stream(
            method,
            request_serializer=request.SerializeToString,
            response_deserializer=response.FromString,
        )
        yield Backend(call, channel, method, request(config=config), request)
    await running.stop(0)


async def expect_error(awaitable: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable
    return caught.value


async def drain(call: Any) -> list[Any]:
    return [r async for r in call]


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("send_config", [True, False], ids=["after config", "before config"])
async def test_an_idle_stream_ends_and_frees_the_only_slot(kind: str, send_config: bool) -> None:
    async with backend(kind, idle=0.5) as service:
        release = asyncio.Event()

        async def silent() -> AsyncIterator[Any]:
            if send_config:
                yield service.config
            await release.wait()
            yield service.config

        error = await expect_error(drain(service.call(silent(), timeout=30)))
        release.set()
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "no message for 0.5 s" in (error.details() or "")
        responses = await service.run([service.config, *service.audio(2)])
        assert responses[-1].WhichOneof("response") in ("summary", "result")


@pytest.mark.parametrize("kind", BACKENDS)
async def test_millisecond_chunks_are_refused_and_a_short_last_chunk_is_not(kind: str) -> None:
    async with backend(kind) as service:
        release = asyncio.Event()

        async def tiny() -> AsyncIterator[Any]:
            yield service.config
            for i in range(3):
                chunk = audio_pb2.AudioChunk(pcm_s16le=b"\0\0" * 16, offset_samples=16 * i)
                yield service.request(audio=chunk)
            await release.wait()  # the server's answer ends the call; nothing more to send

        error = await expect_error(drain(service.call(tiny(), timeout=10)))
        release.set()
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "audio.pcm_s16le: a chunk of 16 samples came before another" in (
            error.details() or ""
        )
        assert "at least 1600 samples (0.1 s)" in (error.details() or "")
        responses = await service.run([service.config, *service.audio(1.05)])
        assert responses[-1].WhichOneof("response") in ("summary", "result")


@pytest.mark.parametrize("kind", BACKENDS)
async def test_progress_replies_follow_the_audio_not_the_messages(kind: str) -> None:
    async with backend(kind) as service:
        responses = await service.run([service.config, *service.audio(10, chunk=0.1)])
    progress = [r for r in responses if r.WhichOneof("response") == "progress"]
    assert 1 <= len(progress) <= 2 * 10 + 2, "at most one per second of received + processed"


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_malformed_stream_message_is_invalid_argument(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with backend(kind) as service:
        raw: Any = service.channel.stream_stream(service.method)

        async def garbage() -> AsyncIterator[bytes]:
            yield service.config.SerializeToString()
            yield GARBAGE

        with caplog.at_level(logging.WARNING):
            error = await expect_error(drain(raw(garbage(), timeout=10)))
        responses = await service.run([service.config, *service.audio(1)])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request message" in (error.details() or "")
    assert "DecodeError" not in (error.details() or "")
    refused = [r for r in caplog.records if "malformed request" in r.getMessage()]
    assert refused and all(r.levelno == logging.WARNING and not r.exc_info for r in refused)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert responses[-1].WhichOneof("response") in ("summary", "result")


async def test_malformed_unary_and_upload_messages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness(FakeTranscriber(), FakeDiarizer(), tmp_path) as h:
        unary: Any = h.channel.unary_unary("/whospoke.v1.Orchestrator/GetUpload")
        upload: Any = h.channel.stream_unary("/whospoke.v1.Orchestrator/Upload")

        async def garbage() -> AsyncIterator[bytes]:
            yield GARBAGE

        with caplog.at_level(logging.WARNING):
            errors = [
                await expect_error(unary(GARBAGE, timeout=10)),
                await expect_error(upload(garbage(), timeout=10)),
            ]
        status = await h.stub.GetStatus(pb.GetStatusRequest(), timeout=10)
    for error in errors:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed request message" in (error.details() or "")
        assert "class" not in (error.details() or "")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert status.jobs_running == 0
    assert not await asyncio.to_thread(lambda: list(tmp_path.glob(".*.part")))


def request_counts(metrics: Metrics, method: str) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    pattern = rf'^whospoke_grpc_requests_total\{{code="(\w+)",method="{method}",[^}}]*\}} (\S+)$'
    return {code: float(value) for code, value in re.findall(pattern, text, re.M)}


async def test_cancelled_calls_are_counted_as_cancelled(tmp_path: Path) -> None:
    async with harness(FakeTranscriber(), FakeDiarizer(), tmp_path, queued=32) as h:
        for _ in range(30):
            call = h.stub.Process(pb.ProcessRequest(audio=wav_bytes(20)), timeout=30)
            await anext(aiter(call))
            call.cancel()
        for _ in range(400):  # the server learns of each cancel asynchronously
            counts = request_counts(h.metrics, "Process")
            if sum(counts.values()) >= 30:
                break
            await asyncio.sleep(0.025)
        status = await h.stub.GetStatus(pb.GetStatusRequest(), timeout=10)
    assert counts == {"CANCELLED": 30.0}
    assert status.jobs_running == 0 and status.jobs_queued == 0


@dataclass
class CallDetails:
    method: str
    invocation_metadata: tuple[tuple[str, str | bytes], ...]


class LeftContext:
    """A servicer context whose client has gone away."""

    def code(self) -> None:
        return None

    def cancelled(self) -> bool:
        return True


async def test_a_stream_left_between_two_responses_counts_as_cancelled() -> None:
    """gRPC closes a response generator (GeneratorExit at its `yield`) when the client
    leaves while the server is sending; that must not count as OK."""
    metrics = Metrics("test")

    async def responses(request: object, context: object) -> AsyncIterator[int]:
        for item in range(10):
            yield item

    async def continuation(details: object) -> Any:
        return grpc.unary_stream_rpc_method_handler(responses)

    details = CallDetails("/whospoke.test/Method", ())
    handler = await ServiceInterceptor(metrics).intercept_service(continuation, details)
    assert handler is not None
    stream = cast(Any, handler).unary_stream(object(), LeftContext())
    assert await anext(stream) == 0
    await stream.aclose()
    assert request_counts(metrics, "Method") == {"CANCELLED": 1.0}
