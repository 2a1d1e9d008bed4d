"""End to end over a real socket: `whospoke-transcriber` as a subprocess."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from whospoke.common.audio import Samples, iter_chunks
from whospoke.common.procs import ServiceProcess, free_port
from whospoke.evaluation import sample_transcript, word_error_rate
from whospoke.v1 import transcriber_pb2 as pb
from whospoke.v1 import transcriber_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.models]


async def test_transcriber_process_streams_segments_before_the_end(sample_audio: Samples) -> None:
    metrics_port = free_port()
    service = ServiceProcess.start(
        "transcriber", ["--model", "tiny.en", "--cpu-threads", "2"], metrics_port=metrics_port
    )
    try:
        await service.wait_serving(within=120)
        async with service.channel() as channel:
            await _check_reflection(channel)
            stub = pb_grpc.TranscriberStub(channel)
            info = await stub.GetInfo(pb.GetTranscriberInfoRequest(), timeout=5)
            assert info.model == "tiny.en" and info.ready and info.device == "cpu"

            audio = np.concatenate([sample_audio, sample_audio])
            chunks = list(iter_chunks(audio, 1.0))
            held_at = 40
            first_segment = asyncio.Event()
            sent = 0

            async def requests() -> AsyncIterator[pb.TranscribeRequest]:
                """Holds the stream after 40 s until a segment arrives.

                The first speech region runs to 30.4 s and the next starts at
                37.3 s, so by 40 s a closed region is ready to decode.
                """
                nonlocal sent
                config = pb.TranscriptionConfig(language="en", live=True)
                yield pb.TranscribeRequest(config=config)
                for index, chunk in enumerate(chunks):
                    if index == held_at:
                        await asyncio.wait_for(first_segment.wait(), timeout=90)
                    yield pb.TranscribeRequest(audio=chunk)
                    sent += 1

            segments_while_sending = 0
            responses = []
            async for response in stub.Transcribe(requests(), timeout=180):
                responses.append(response)
                if response.HasField("segment") and sent < len(chunks):
                    segments_while_sending += 1
                    first_segment.set()
        assert segments_while_sending >= 1
        summary = responses[-1].summary
        assert summary.audio_duration_seconds == pytest.approx(60, abs=0.1)
        text = "".join(r.segment.text for r in responses if r.HasField("segment"))
        assert word_error_rate(f"{sample_transcript()} {sample_transcript()}", text) < 0.3

        url = f"http://127.0.0.1:{metrics_port}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
        assert 'whospoke_grpc_requests_total{code="OK",method="Transcribe"' in body
        assert "whospoke_model_load_seconds" in body
    finally:
        assert service.stop() == 0, service.log()
    assert "shutting down" in service.log()


async def _check_reflection(channel: object) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="whospoke.v1.Transcriber"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        yield reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="whospoke.v1.Transcriber"
        )

    replies = [r async for r in stub.ServerReflectionInfo(one())]
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"whospoke.v1.Transcriber", "grpc.health.v1.Health"} <= names
    assert replies[1].file_descriptor_response.file_descriptor_proto


def test_console_script_documents_its_environment() -> None:
    script = Path(sys.executable).parent / "whospoke-transcriber"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    for variable in ("WHOSPOKE_TRANSCRIBER_MODEL", "WHOSPOKE_TRANSCRIBER_DEVICE"):
        assert variable in result.stdout
