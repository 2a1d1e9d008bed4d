"""End to end over a real socket: `whospoke-diarizer` as a subprocess on sample.wav."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest

from whospoke.common.audio import Samples, iter_chunks
from whospoke.common.procs import ServiceProcess
from whospoke.v1 import diarizer_pb2 as pb
from whospoke.v1 import diarizer_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.models]


async def test_diarizer_process_finds_the_two_speakers(sample_audio: Samples) -> None:
    service = ServiceProcess.start("diarizer", ["--threads", "2"])
    try:
        await service.wait_serving(within=180)
        async with service.channel() as channel:
            stub = pb_grpc.DiarizerStub(channel)

            async def requests() -> AsyncIterator[pb.DiarizeRequest]:
                yield pb.DiarizeRequest(config=pb.DiarizationConfig(return_embeddings=True))
                for chunk in iter_chunks(sample_audio, 1.0):
                    yield pb.DiarizeRequest(audio=chunk)

            responses = [r async for r in stub.Diarize(requests(), timeout=300)]
        progress = [r.progress for r in responses if r.HasField("progress")]
        assert progress and progress[-1].analysed_seconds == pytest.approx(30, abs=0.1)
        result = responses[-1].result
        assert [s.speaker for s in result.speakers] == ["SPEAKER_00", "SPEAKER_01"]
        assert all(len(s.embedding) == 192 for s in result.speakers)
        exclusive = [(t.start_seconds, t.end_seconds) for t in result.exclusive_turns]
        assert all(a[1] <= b[0] + 1e-6 for a, b in itertools.pairwise(exclusive))
        assert 20 < sum(e - s for s, e in exclusive) < 25
    finally:
        assert service.stop() == 0, service.log()
