"""A client's decoder temperature reaches the transcriber's engine; one out of range is refused.

The real orchestrator sends it over gRPC to the real transcriber servicer (fake
engine), whose session records the options it was opened with.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from orchestrator.backends import BackendSettings, GrpcTranscriber
from tests.fakes import FakeDiarizer, FakeTranscriber, FakeTranscriptionEngine, serve, wav_bytes
from tests.integration.test_backend_errors import transcriber_server
from tests.integration.test_transcriber_servicer import config, expect_error
from tests.integration.test_transcriber_servicer import serve as serve_transcriber
from whospoke.v1 import orchestrator_pb2 as pb


async def test_the_temperature_reaches_the_transcribers_engine(tmp_path: Path) -> None:
    engine = FakeTranscriptionEngine()
    async with transcriber_server(engine) as address:
        transcriber = GrpcTranscriber(BackendSettings(address))
        async with serve(transcriber, FakeDiarizer(), tmp_path) as stub:
            for options in (pb.ProcessOptions(temperature=0.3), pb.ProcessOptions()):
                request = pb.ProcessRequest(audio=wav_bytes(1), options=options)
                events = [e async for e in stub.Process(request, timeout=10)]
                assert events[-1].result.text
        await transcriber.close()
    assert [s.options.temperature for s in engine.sessions] == [0.3, 0.0]


@pytest.mark.parametrize("value", [1.5, -0.5])
async def test_out_of_range_is_invalid_argument_before_any_work(
    tmp_path: Path, value: float
) -> None:
    transcriber = FakeTranscriber()
    async with serve(transcriber, FakeDiarizer(), tmp_path) as stub:
        request = pb.ProcessRequest(
            audio=wav_bytes(1), options=pb.ProcessOptions(temperature=value)
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [e async for e in stub.Process(request, timeout=10)]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(
        f"options.temperature: {value:g} is outside the range 0 to 1"
    )
    assert transcriber.options == []


async def test_the_transcriber_refuses_it_out_of_range_too() -> None:
    engine = FakeTranscriptionEngine()
    async with serve_transcriber(engine) as h:
        await expect_error(
            h.stub,
            [config(temperature=2.0)],  # no audio after it: grpc/grpc#36066
            grpc.StatusCode.INVALID_ARGUMENT,
            "config.temperature: 2 is outside the range 0 to 1",
        )
    assert engine.sessions == []
