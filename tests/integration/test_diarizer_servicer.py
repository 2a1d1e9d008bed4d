"""The Diarizer servicer on an in-process server at port 0, with a fake engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import grpc
import numpy as np
import pytest

from diarizer.config import DiarizerConfig
from diarizer.engine import DiarizerModelConfig
from diarizer.server import build_spec
from tests.fakes import FakeDiarizationEngine as FakeEngine
from whospoke.common.audio import SAMPLE_RATE, iter_chunks
from whospoke.common.config import ServerConfig
from whospoke.common.metrics import Metrics
from whospoke.common.server import start_server
from whospoke.contract.diarization import DiarizationOptions
from whospoke.v1 import diarizer_pb2 as pb
from whospoke.v1 import diarizer_pb2_grpc as pb_grpc

Request = pb.DiarizeRequest


@asynccontextmanager
async def serve(engine: FakeEngine) -> AsyncIterator[pb_grpc.DiarizerAsyncStub]:
    config = DiarizerConfig(server=ServerConfig(port=0), model=DiarizerModelConfig())
    metrics = Metrics("diarizer")
    running = await start_server(config.server, build_spec(config, engine, metrics), metrics)
    await running.set_serving(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield pb_grpc.DiarizerStub(channel)
    await running.stop(0)


def config(**fields: object) -> Request:
    return Request(config=pb.DiarizationConfig(**fields))  # type: ignore[arg-type]


def audio(duration: float) -> list[Request]:
    samples = np.zeros(int(duration * SAMPLE_RATE), dtype=np.float32)
    return [Request(audio=chunk) for chunk in iter_chunks(samples, 1.0)]


async def call(
    stub: pb_grpc.DiarizerAsyncStub, requests: Iterable[Request]
) -> list[pb.DiarizeResponse]:
    async def stream() -> AsyncIterator[Request]:
        for request in requests:
            yield request

    return [r async for r in stub.Diarize(stream(), timeout=10)]


async def test_progress_then_one_result() -> None:
    engine = FakeEngine()
    async with serve(engine) as stub:
        responses = await call(stub, [config(min_speakers=2, max_speakers=3), *audio(4)])
    assert [r.WhichOneof("response") for r in responses][-1] == "result"
    assert responses[-2].progress.analysed_seconds == pytest.approx(4)
    result = responses[-1].result
    assert [t.speaker for t in result.exclusive_turns] == ["SPEAKER_00", "SPEAKER_01"] * 2
    assert len(result.turns) == 4 and result.audio_duration_seconds == pytest.approx(4)
    assert [(s.speaker, s.speech_seconds) for s in result.speakers] == [
        ("SPEAKER_00", 2.0),
        ("SPEAKER_01", 2.0),
    ]
    assert not result.speakers[0].embedding
    assert engine.sessions[0].options == DiarizationOptions(None, 2, 3)


async def test_live_turns_come_while_the_audio_arrives_each_once() -> None:
    engine = FakeEngine()
    async with serve(engine) as stub:
        responses = await call(stub, [config(live_turns=True), *audio(4)])
    kinds = [r.WhichOneof("response") for r in responses]
    assert kinds[-1] == "result" and kinds.index("live") < kinds.index("progress", 1)
    live = [r.live for r in responses if r.HasField("live")]
    turns = [(t.start_seconds, t.speaker) for message in live for t in message.turns]
    assert turns == [(0, "SPEAKER_00"), (1, "SPEAKER_01"), (2, "SPEAKER_00"), (3, "SPEAKER_01")]
    assert [m.until_seconds for m in live] == sorted(m.until_seconds for m in live)
    assert engine.sessions[0].options.live_latency_seconds == 2.0  # 0 asks for the default


async def test_no_live_turns_unless_asked() -> None:
    async with serve(FakeEngine()) as stub:
        responses = await call(stub, [config(), *audio(3)])
    assert not any(r.HasField("live") for r in responses)


async def test_turn_output_and_embeddings_are_honoured() -> None:
    async with serve(FakeEngine()) as stub:
        exclusive = await call(
            stub, [config(turn_output=pb.TURN_OUTPUT_EXCLUSIVE, return_embeddings=True), *audio(2)]
        )
    result = exclusive[-1].result
    assert not result.turns and len(result.exclusive_turns) == 2
    assert list(result.speakers[0].embedding) == [0.5, 0.5]


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"num_speakers": 0}, "config.num_speakers: must be at least 1, got 0"),
        ({"min_speakers": -1}, "config.min_speakers: must be at least 1, got -1"),
        ({"min_speakers": 3, "max_speakers": 2}, "config.min_speakers: 3 is greater than"),
        ({"num_speakers": 2, "max_speakers": 3}, "config.num_speakers: give either"),
        ({"turn_output": 9}, "config.turn_output: unknown value 9"),
        (
            {"live_turns": True, "live_latency_seconds": 0.2},
            "config.live_latency_seconds: must be from 0.5 to 10 s (or 0), got 0.2",
        ),
    ],
)
async def test_bad_configs_are_invalid_argument(fields: dict[str, object], text: str) -> None:
    """The config alone: audio written after the server has refused it could come back as
    INTERNAL instead of the server's status (grpc/grpc#36066, grpcio's asyncio client)."""
    async with serve(FakeEngine()) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(stub, [config(**fields)])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert text in (caught.value.details() or "")


async def test_audio_first_and_config_twice_are_invalid_argument() -> None:
    async with serve(FakeEngine()) as stub:
        for requests, text in (
            (audio(1), "config: the first DiarizeRequest must carry the config"),
            ([config(), config()], "config: sent twice; only the first DiarizeRequest"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(stub, requests)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert text in (caught.value.details() or "")


async def test_get_info() -> None:
    async with serve(FakeEngine()) as stub:
        info = await stub.GetInfo(pb.GetDiarizerInfoRequest())
    assert (info.clustering_method, info.min_cluster_size, info.ready) == ("centroid", 12, True)
    assert info.max_concurrent_streams == 1 and info.window_step_seconds == 1.0
