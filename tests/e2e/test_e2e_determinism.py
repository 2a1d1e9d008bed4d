"""Same file, same options, same answer: results must not depend on timing or load.

The three real services run as subprocesses. Each input is processed once on an
idle machine and once with CPU-burning processes alongside, which changes how
fast audio reaches the backends and how much of it has arrived when they plan;
segments, words, their times and speakers, and the speaker turns must be
identical field by field (only timings may differ).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from whospoke.common.audio import wav_bytes
from whospoke.common.decode import decode_audio
from whospoke.common.procs import ServiceProcess, free_port
from whospoke.evaluation import sample_path
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.models]

DEV_DATA = Path(__file__).resolve().parents[3] / "shared/data/diarization-dev"


@pytest.fixture(scope="module")
def orchestrator() -> Iterator[ServiceProcess]:
    transcriber = ServiceProcess.start(
        "transcriber", ["--model", "tiny.en", "--cpu-threads", "1"], metrics_port=free_port()
    )
    diarizer = ServiceProcess.start("diarizer", ["--threads", "1"], metrics_port=free_port())
    backends = ["--transcriber", transcriber.address, "--diarizer", diarizer.address]
    orchestrator = ServiceProcess.start("orchestrator", backends, metrics_port=free_port())
    services = [transcriber, diarizer, orchestrator]
    try:
        for service in services:
            asyncio.run(service.wait_serving(within=300))
        yield orchestrator
    finally:
        for service in reversed(services):
            service.stop()


def meeting_two_minutes() -> bytes:
    clips = sorted(DEV_DATA.glob("*.wav"))
    if not clips:
        pytest.skip("shared/data/diarization-dev not present")
    audio = np.concatenate([decode_audio(clip) for clip in clips])
    return wav_bytes(audio[: 120 * 16_000])


def fingerprint(result: pb.ProcessResult) -> list[Any]:
    """Everything about the answer except how long it took."""
    answer = pb.ProcessResult()
    answer.CopyFrom(result)
    answer.ClearField("timings")
    return [answer.SerializeToString(deterministic=True)]


async def process(service: ServiceProcess, data: bytes) -> pb.ProcessResult:
    async with service.channel() as channel:
        stub = pb_grpc.OrchestratorStub(channel)
        events = [e async for e in stub.Process(pb.ProcessRequest(audio=data), timeout=600)]
    return events[-1].result


@pytest.mark.parametrize("name", ["sample", "meeting-2"])
def test_a_file_gives_the_same_answer_idle_and_under_load(
    orchestrator: ServiceProcess, name: str
) -> None:
    data = sample_path().read_bytes() if name == "sample" else meeting_two_minutes()
    idle = asyncio.run(process(orchestrator, data))
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        loaded = asyncio.run(process(orchestrator, data))
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert idle.segments and idle.exclusive_turns
    assert [s.text for s in loaded.segments] == [s.text for s in idle.segments]
    assert [(t.start_seconds, t.end_seconds, t.speaker) for t in loaded.diarization_turns] == [
        (t.start_seconds, t.end_seconds, t.speaker) for t in idle.diarization_turns
    ]
    assert fingerprint(loaded) == fingerprint(idle)
