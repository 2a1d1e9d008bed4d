"""The Transcriber servicer on an in-process server at port 0, with a fake engine.

Covers the contract (config first, segments then progress then summary), error
codes and messages, queueing, cancellation, health, reflection and metrics.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.fakes import FakeTranscriptionEngine as FakeEngine
from transcriber.config import ModelConfig, TranscriberConfig
from transcriber.server import build_spec
from whospoke.common.audio import SAMPLE_RATE, iter_chunks
from whospoke.common.config import ServerConfig
from whospoke.common.metrics import Metrics
from whospoke.common.server import RunningServer, start_server
from whospoke.v1 import audio_pb2
from whospoke.v1 import transcriber_pb2 as pb
from whospoke.v1 import transcriber_pb2_grpc as pb_grpc

Request = pb.TranscribeRequest


@dataclass
class Harness:
    running: RunningServer
    stub: pb_grpc.TranscriberAsyncStub
    channel: grpc.aio.Channel
    metrics: Metrics


@asynccontextmanager
async def serve(
    engine: FakeEngine, max_running: int = 1, max_queued: int = 2
) -> AsyncIterator[Harness]:
    config = TranscriberConfig(
        server=ServerConfig(port=0),
        model=ModelConfig(model="fake"),
        max_concurrent_streams=max_running,
        max_queued_streams=max_queued,
    )
    metrics = Metrics("transcriber")
    running = await start_server(config.server, build_spec(config, engine, metrics), metrics)
    if engine.ready:
        await running.set_serving(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield Harness(running, pb_grpc.TranscriberStub(channel), channel, metrics)
    await running.stop(0)


def config(**fields: object) -> Request:
    return Request(config=pb.TranscriptionConfig(**fields))  # type: ignore[arg-type]


def audio(seconds: float) -> list[Request]:
    samples = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    return [Request(audio=chunk) for chunk in iter_chunks(samples, 1.0)]


async def stream_of(requests: Iterable[Request]) -> AsyncIterator[Request]:
    for request in requests:
        yield request


async def call(
    stub: pb_grpc.TranscriberAsyncStub, requests: Iterable[Request]
) -> list[pb.TranscribeResponse]:
    return [r async for r in stub.Transcribe(stream_of(requests), timeout=10)]


async def expect_error(
    stub: pb_grpc.TranscriberAsyncStub,
    requests: Iterable[Request],
    code: grpc.StatusCode,
    text: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(stub, requests)
    assert caught.value.code() == code
    assert text in (caught.value.details() or "")


async def test_segments_progress_and_summary_in_order() -> None:
    async with serve(FakeEngine()) as h:
        responses = await call(h.stub, [config(language="fr"), *audio(3.5)])
    kinds = [r.WhichOneof("response") for r in responses]
    assert kinds[-1] == "summary" and kinds.count("summary") == 1
    segments = [r.segment for r in responses if r.HasField("segment")]
    assert [s.text for s in segments] == [" second 0", " second 1", " second 2", " second 3"]
    assert [s.start_seconds for s in segments] == [0.0, 1.0, 2.0, 3.0]
    assert segments[-1].end_seconds == pytest.approx(3.5)
    assert segments[0].words[0].end_seconds == pytest.approx(1.0)
    progress = [r.progress for r in responses if r.HasField("progress")]
    assert progress[-1].received_seconds == pytest.approx(3.5)
    assert progress[-1].transcribed_seconds == pytest.approx(3.5)
    summary = responses[-1].summary
    assert (summary.language, summary.language_probability) == ("fr", 1.0)
    assert summary.audio_duration_seconds == pytest.approx(3.5)
    assert summary.segment_count == 4 and summary.model == "fake"


async def test_options_reach_the_engine_with_defaults() -> None:
    engine = FakeEngine()
    async with serve(engine) as h:
        await call(h.stub, [config(task=pb.TASK_TRANSLATE, hotwords="Yankee"), *audio(1)])
        await call(h.stub, [config(word_timestamps=False, vad_filter=False, beam_size=2)])
    first, second = (s.options for s in engine.sessions)
    assert (first.task, first.hotwords, first.beam_size) == ("translate", "Yankee", 5)
    assert first.word_timestamps and first.vad_filter and first.language is None
    assert not second.word_timestamps and not second.vad_filter and second.beam_size == 2


async def test_empty_audio_gives_an_empty_result() -> None:
    async with serve(FakeEngine()) as h:
        responses = await call(h.stub, [config()])
    assert responses[-1].summary.segment_count == 0
    assert responses[-1].summary.audio_duration_seconds == 0


@pytest.mark.parametrize(
    ("requests", "text"),
    [
        ([], "config: the first TranscribeRequest must carry the config"),
        (audio(1), "config: the first TranscribeRequest must carry the config"),
        ([config(), config()], "config: sent twice"),
        ([config(beam_size=50)], "config.beam_size: 50 is above the maximum of 20"),
        ([config(language="xx")], "config.language: unknown language code 'xx'"),
        ([config(task=7)], "config.task: unknown value 7"),
        (
            [config(), Request(audio=audio_pb2.AudioChunk(pcm_s16le=b"\0\0", offset_samples=9))],
            "audio.offset_samples: gap in the stream: expected 0, got 9",
        ),
        (
            [config(), Request(audio=audio_pb2.AudioChunk(pcm_s16le=b"\0"))],
            "audio.pcm_s16le: odd length 1 bytes",
        ),
    ],
)
async def test_bad_requests_are_invalid_argument(requests: list[Request], text: str) -> None:
    async with serve(FakeEngine()) as h:
        await expect_error(h.stub, requests, grpc.StatusCode.INVALID_ARGUMENT, text)
        # The service keeps working after a rejected call.
        assert (await call(h.stub, [config(), *audio(1)]))[-1].summary.segment_count == 1


async def test_not_loaded_is_unavailable_and_not_serving() -> None:
    engine = FakeEngine(ready=False)
    async with serve(engine) as h:
        health = health_pb2_grpc.HealthStub(h.channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="whospoke.v1.Transcriber"))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await expect_error(h.stub, [config()], grpc.StatusCode.UNAVAILABLE, "still loading")
        await h.running.load()
        reply = await health.Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert (await call(h.stub, [config()]))[-1].HasField("summary")


async def test_engine_failure_is_internal_without_details() -> None:
    async with serve(FakeEngine(fail_with=RuntimeError("secret path /x"))) as h:
        await expect_error(
            h.stub, [config(), *audio(1)], grpc.StatusCode.INTERNAL, "internal error"
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(h.stub, [config(), *audio(1)])
        assert "secret" not in (caught.value.details() or "")


async def test_full_queue_is_resource_exhausted_at_once() -> None:
    gate = threading.Event()
    async with serve(FakeEngine(gate=gate), max_running=1, max_queued=1) as h:
        busy = [asyncio.create_task(call(h.stub, [config(), *audio(1)])) for _ in range(2)]
        await _until(lambda: gauge(h.metrics, "whospoke_queue_depth") == 1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await expect_error(
            h.stub, [config()], grpc.StatusCode.RESOURCE_EXHAUSTED, "1 job(s) running and 1 queued"
        )
        assert loop.time() - started < 1.0
        gate.set()
        results = await asyncio.gather(*busy)
    assert all(r[-1].summary.segment_count == 1 for r in results)


async def test_client_cancel_stops_the_engine_and_frees_the_slot() -> None:
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    async with serve(engine, max_running=1, max_queued=0) as h:
        call_ = h.stub.Transcribe(stream_of([config(), *audio(2)]))
        await _until(lambda: bool(engine.sessions) and engine.sessions[0].received > 0)
        call_.cancel()
        await _until(lambda: engine.sessions[0].stopped.is_set(), within=2.0)
        await _until(lambda: gauge(h.metrics, "whospoke_jobs_running") == 0)
        gate.set()
        assert (await call(h.stub, [config(), *audio(1)]))[-1].summary.segment_count == 1


async def test_get_info_reports_model_and_limits() -> None:
    async with serve(FakeEngine(), max_running=1, max_queued=3) as h:
        info = await h.stub.GetInfo(pb.GetTranscriberInfoRequest())
    assert (info.model, info.device, info.compute_type) == ("fake", "cpu", "int8")
    assert list(info.languages) == ["en", "fr"] and info.multilingual and info.ready
    assert (info.max_concurrent_streams, info.max_queued_streams) == (1, 3)


async def test_reflection_lists_the_services() -> None:
    async with serve(FakeEngine()) as h:
        stub = reflection_pb2_grpc.ServerReflectionStub(h.channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = [r async for r in stub.ServerReflectionInfo(stream_of([request]))]
    names = {s.name for s in responses[0].list_services_response.service}
    assert {"whospoke.v1.Transcriber", "grpc.health.v1.Health"} <= names


async def test_metrics_count_requests_by_code_and_audio() -> None:
    async with serve(FakeEngine()) as h:
        await call(h.stub, [config(), *audio(2)])
        with pytest.raises(grpc.aio.AioRpcError):
            await call(h.stub, [config(beam_size=99)])
        registry = h.metrics.registry
    get = registry.get_sample_value
    labels = {"service": "transcriber", "method": "Transcribe"}
    assert get("whospoke_grpc_requests_total", {**labels, "code": "OK"}) == 1
    assert get("whospoke_grpc_requests_total", {**labels, "code": "INVALID_ARGUMENT"}) == 1
    assert get("whospoke_audio_processed_seconds_total", {"service": "transcriber"}) == 2
    assert get("whospoke_grpc_request_duration_seconds_count", labels) == 2
    assert get("whospoke_grpc_requests_in_flight", labels) == 0


def gauge(metrics: Metrics, name: str) -> float | None:
    """A gauge's value through the registry's public API."""
    return metrics.registry.get_sample_value(name, {"service": "transcriber"})


async def _until(predicate: object, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, made at test time."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_serves_encrypted_connections(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    settings = TranscriberConfig(
        server=ServerConfig(port=0, tls_cert=str(cert), tls_key=str(key)),
        model=ModelConfig(model="fake"),
    )
    metrics = Metrics("transcriber")
    running = await start_server(
        settings.server, build_spec(settings, FakeEngine(), metrics), metrics
    )
    await running.set_serving(True)
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{running.port}", credentials) as channel:
            stub = pb_grpc.TranscriberStub(channel)
            assert (await call(stub, [config(), *audio(1)]))[-1].summary.segment_count == 1
        async with grpc.aio.insecure_channel(f"localhost:{running.port}") as plain:
            with pytest.raises(grpc.aio.AioRpcError):
                await pb_grpc.TranscriberStub(plain).GetInfo(
                    pb.GetTranscriberInfoRequest(), timeout=2
                )
    finally:
        await running.stop(0)
