"""End to end over real sockets: the three services as subprocesses, the CLI, sample.wav."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from whospoke.cli.formats import render
from whospoke.common.procs import ServiceProcess
from whospoke.evaluation import sample_path, sample_turns
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.models]


@pytest.fixture(scope="module")
def orchestrator() -> Iterator[ServiceProcess]:
    transcriber = ServiceProcess.start("transcriber", ["--model", "tiny.en", "--cpu-threads", "2"])
    diarizer = ServiceProcess.start("diarizer", ["--threads", "2"])
    backends = [
        "--transcriber",
        f"127.0.0.1:{transcriber.port}",
        "--diarizer",
        f"ipv4:127.0.0.1:{diarizer.port}",
    ]
    orchestrator = ServiceProcess.start("orchestrator", backends)
    services = [transcriber, diarizer, orchestrator]
    try:
        for service in services:
            asyncio.run(service.wait_serving(within=300))
        yield orchestrator
    finally:
        for service in reversed(services):
            assert service.stop() == 0, service.log()


def consistency(result: pb.ProcessResult) -> float:
    """Share of words inside reference turns labelled as their reference speaker's majority."""
    by_reference: dict[str, Counter[str]] = {}
    words = [w for s in result.segments for w in s.words]
    pairs = []
    for start, end, who in sample_turns():
        for w in words:
            if start <= (w.start_seconds + w.end_seconds) / 2 < end:
                by_reference.setdefault(who, Counter())[w.speaker] += 1
                pairs.append((who, w.speaker))
    majority = {who: counts.most_common(1)[0][0] for who, counts in by_reference.items()}
    assert len(set(majority.values())) == len(majority), "two reference speakers share a label"
    return sum(majority[who] == label for who, label in pairs) / len(pairs)


async def test_process_sample_attributes_words_to_two_speakers(
    orchestrator: ServiceProcess, tmp_path: Path
) -> None:
    async with orchestrator.channel() as channel:
        stub = pb_grpc.OrchestratorStub(channel)
        request = pb.ProcessRequest(audio=sample_path().read_bytes())
        events = [e async for e in stub.Process(request, timeout=600)]
        status = await stub.GetStatus(pb.GetStatusRequest())
    assert all(b.serving for b in status.backends)
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds.index("segment") < kinds.index("result")
    result = events[-1].result
    assert [s.speaker for s in result.speakers] == ["SPEAKER_00", "SPEAKER_01"]
    assert all(w.speaker for s in result.segments for w in s.words)
    assert consistency(result) >= 0.9
    assert result.language == "en" and 29.9 < result.audio_duration_seconds < 30.1
    for fmt in ("srt", "vtt"):
        path = tmp_path / f"sample.{fmt}"
        path.write_text(render(result, fmt))
        with av.open(str(path)) as container:
            cues = [cue for packet in container.demux() for cue in packet.decode()]
        assert len(cues) == len([s for s in result.segments if s.text.strip()])
    from pyannote.database.util import load_rttm

    rttm = tmp_path / "sample.rttm"
    rttm.write_text(render(result, "rttm", uri="sample"))
    turns = load_rttm(str(rttm))["sample"]  # type: ignore[no-untyped-call]
    assert sorted(turns.labels()) == ["SPEAKER_00", "SPEAKER_01"]


def test_cli_process_writes_json(orchestrator: ServiceProcess, tmp_path: Path) -> None:
    output = tmp_path / "sample.json"
    command = [sys.executable, "-m", "whospoke.cli.main", "process", str(sample_path())]
    command += ["--server", orchestrator.address, "--format", "json", "-o", str(output), "-q"]
    subprocess.run(command, check=True, timeout=600)
    data = json.loads(output.read_text())
    assert {"text", "segments", "transcription_segments", "diarization_segments"} <= set(data)
    assert {s["speaker"] for s in data["segments"]} == {"SPEAKER_00", "SPEAKER_01"}
    assert data["language"] == "en" and data["duration"] == pytest.approx(30, abs=0.1)
    health = [sys.executable, "-m", "whospoke.cli.main", "health", "--server", orchestrator.address]
    done = subprocess.run(health, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "diarizer" in done.stdout and "SERVING" in done.stdout
