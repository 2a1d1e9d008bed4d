"""End to end over real sockets: the three services as subprocesses, the CLI, sample.wav."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from whospoke.common.procs import ServiceProcess, free_port
from whospoke.contract.renderings import render
from whospoke.evaluation import sample_path, sample_turns
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.models]


@pytest.fixture(scope="module")
def stack() -> Iterator[list[ServiceProcess]]:
    """Transcriber, diarizer and orchestrator, started once for the module."""
    transcriber = ServiceProcess.start(
        "transcriber", ["--model", "tiny.en", "--cpu-threads", "2"], metrics_port=free_port()
    )
    diarizer = ServiceProcess.start("diarizer", ["--threads", "2"], metrics_port=free_port())
    backends = [
        "--transcriber",
        f"127.0.0.1:{transcriber.port}",
        "--diarizer",
        f"ipv4:127.0.0.1:{diarizer.port}",
    ]
    orchestrator = ServiceProcess.start("orchestrator", backends, metrics_port=free_port())
    services = [transcriber, diarizer, orchestrator]
    try:
        for service in services:
            asyncio.run(service.wait_serving(within=300))
        yield services
    finally:
        for service in reversed(services):
            assert service.stop() == 0, service.log()


@pytest.fixture(scope="module")
def orchestrator(stack: list[ServiceProcess]) -> ServiceProcess:
    return stack[-1]


def consistency(result: pb.ProcessResult) -> float:
    """Share of words inside reference turns labelled as their reference speaker's majority."""
    words = [(w.start_seconds, w.end_seconds, w.speaker) for s in result.segments for w in s.words]
    return word_consistency(words)


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
    # Measured 0.922 on AMD EPYC (AVX2; 0.889 before files were planned on whole analysis
    # spans) and 0.90-0.92 on Intel Xeon (AVX-512): int8 kernels move a word or two across
    # the quick turn changes. Labels merged or swapped score about 0.5, so 0.8 (six words of
    # margin) still fails on the errors this guards.
    assert consistency(result) >= 0.8
    assert result.language == "en" and 29.9 < result.audio_duration_seconds < 30.1
    for fmt in ("srt", "vtt"):
        path = tmp_path / f"sample.{fmt}"
        path.write_text(render(result, fmt))
        with av.open(str(path)) as container:
            cues = [cue for packet in container.demux() for cue in packet.decode()]
        # Zero-length segments (a one-word split by the merge) get a short cue, not dropped.
        spoken = [s for s in result.segments if s.text.strip()]
        assert len(cues) == len(spoken), "every segment with text is a cue that parses"
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


def test_cli_live_streams_sample_with_speakers_then_process_s_result(
    orchestrator: ServiceProcess,
) -> None:
    base = [sys.executable, "-m", "whospoke.cli.main"]
    server = ["--server", orchestrator.address]
    live = [*base, "live", str(sample_path()), *server, "--pace", "2", "--format", "jsonl"]
    done = subprocess.run(live, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    result = events[-1]
    segments = [e for e in events if e.get("type") == "segment"]
    assert len(segments) >= 3 and all(s["words"] for s in segments)
    assert all(0 <= s["latency_seconds"] < 60 for s in segments)  # measured in the bench
    # Provisional speakers as sent, scored against the reference like the final ones. Words
    # sent before the diarizer's first turns (its first window) have none yet: how many
    # depends on timing, so only those with a speaker are scored, and there must be some.
    sent = [(w["start"], w["end"], w["speaker"]) for s in segments for w in s["words"]]
    named = [w for w in sent if w[2]]
    assert len(named) >= 20
    assert word_consistency(named) >= 0.7  # 0.886 measured (tiny.en, pace 2, Intel Xeon)
    # Every update applied, the client's words carry the result's speakers.
    view = {s["index"]: [w["speaker"] for w in s["words"]] for s in segments}
    for update in (e for e in events if e.get("type") == "speaker_update"):
        view[update["index"]] = update["word_speakers"]
    final = [w["speaker"] for s in result["segments"] for w in s["words"]]
    assert [w for i in sorted(view) for w in view[i]] == final
    process = [*base, "process", str(sample_path()), *server, "--format", "json", "-q"]
    offline = json.loads(subprocess.run(process, capture_output=True, timeout=600).stdout)
    assert result["diarization_segments"] == offline["diarization_segments"]


def word_consistency(words: list[tuple[float, float, str]]) -> float:
    """`consistency` of (start, end, speaker) words."""
    by_reference: dict[str, Counter[str]] = {}
    pairs = []
    for start, end, who in sample_turns():
        for w_start, w_end, label in words:
            if start <= (w_start + w_end) / 2 < end:
                by_reference.setdefault(who, Counter())[label] += 1
                pairs.append((who, label))
    majority = {who: counts.most_common(1)[0][0] for who, counts in by_reference.items()}
    assert len(set(majority.values())) == len(majority), "two reference speakers share a label"
    return sum(majority[who] == label for who, label in pairs) / len(pairs)


NODE_CLIENT = Path(__file__).resolve().parents[2] / "clients" / "node"


@pytest.mark.skipif(
    not (NODE_CLIENT / "dist" / "process.js").exists(),
    reason="the Node client is not built (make node)",
)
def test_typed_node_client_uploads_and_processes(orchestrator: ServiceProcess) -> None:
    command = ["node", "dist/process.js", "--server", orchestrator.address, str(sample_path())]
    done = subprocess.run(command, cwd=NODE_CLIENT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    kinds = summary["event_kinds"]
    assert kinds[-1] == "result" and "progress" in kinds[:-1] and "segment" in kinds
    assert sorted(summary["speakers"]) == ["SPEAKER_00", "SPEAKER_01"]
    assert summary["text"] and summary["language"] == "en"
    words = [w for s in summary["segments"] for w in s["words"]]
    assert words and all(w["speaker"] in summary["speakers"] for w in words)


def reflected(address: str) -> tuple[list[str], DescriptorPool, grpc.Channel]:
    """What grpcurl sees: service names and descriptors from reflection alone."""
    channel = grpc.insecure_channel(address)
    database = ProtoReflectionDescriptorDatabase(channel)
    return list(database.get_services()), DescriptorPool(database), channel


def call_dynamically(channel: grpc.Channel, pool: DescriptorPool, method_name: str) -> Any:
    method = pool.FindMethodByName(method_name)
    request = message_factory.GetMessageClass(method.input_type)
    response = message_factory.GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    stub = channel.unary_unary(
        path,
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )
    return stub(request(), timeout=10)


def test_reflection_alone_describes_and_calls_every_service(stack: list[ServiceProcess]) -> None:
    expected = {
        "transcriber": "whospoke.v1.Transcriber",
        "diarizer": "whospoke.v1.Diarizer",
        "orchestrator": "whospoke.v1.Orchestrator",
    }
    for service in stack:
        names, pool, channel = reflected(service.address)
        with channel:
            assert {expected[service.name], "grpc.health.v1.Health"} <= set(names)
            for name in names:
                for method in pool.FindServiceByName(name).methods:
                    assert method.input_type.fields or method.input_type.name.endswith("Request")
                    assert method.output_type.full_name
            health = call_dynamically(channel, pool, "grpc.health.v1.Health.Check")
            assert health.status == 1
            if service.name == "orchestrator":
                status = call_dynamically(channel, pool, "whospoke.v1.Orchestrator.GetStatus")
                assert [b.name for b in status.backends] == ["transcriber", "diarizer"]
                assert all(b.serving for b in status.backends)
                process = pool.FindMethodByName("whospoke.v1.Orchestrator.Process")
                assert process.server_streaming and not process.client_streaming


PROMETHEUS = shutil.which("prometheus")


def prometheus_query(port: int, query: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (make testdata)")
def test_prometheus_scrapes_every_service(stack: list[ServiceProcess], tmp_path: Path) -> None:
    assert PROMETHEUS is not None
    targets = [f"127.0.0.1:{s.metrics_port}" for s in stack]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n  - job_name: whospoke\n    static_configs:\n"
        f"      - targets: {json.dumps(targets)}\n"
    )
    port = free_port()
    command = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(process_once(stack[-1]))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                done = prometheus_query(port, 'whospoke_grpc_requests_total{method="Process"}')
                if (
                    done
                    and prometheus_query(port, "up == 1")
                    and len(prometheus_query(port, "up == 1")) == 3
                ):
                    break
            except OSError:
                pass
            time.sleep(1)
        processed = prometheus_query(port, "whospoke_audio_processed_seconds_total")
        assert {r["metric"]["service"] for r in processed} >= {"transcriber", "diarizer"}
        by_code = prometheus_query(port, 'whospoke_grpc_requests_total{method="Process"}')
        assert by_code and by_code[0]["metric"]["code"] == "OK"
        buckets = prometheus_query(port, "whospoke_grpc_request_duration_seconds_bucket")
        assert {r["metric"]["service"] for r in buckets} == {
            "transcriber",
            "diarizer",
            "orchestrator",
        }
        for gauge in ("whospoke_queue_depth", "whospoke_grpc_requests_in_flight"):
            assert prometheus_query(port, gauge), gauge
    finally:
        server.terminate()
        server.wait(timeout=30)


async def process_once(orchestrator: ServiceProcess) -> None:
    async with orchestrator.channel() as channel:
        stub = pb_grpc.OrchestratorStub(channel)
        request = pb.ProcessRequest(audio=sample_path().read_bytes())
        assert [e async for e in stub.Process(request, timeout=600)][-1].HasField("result")
