"""The gateway's operations endpoints on a real gateway and a real orchestrator (fake
backends): `/health` and its status codes, `/status` as a caller with a token, without one
(job contents hidden) and with no token anywhere (health only), and `/metrics`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx2

from orchestrator.config import BackendsConfig, JobsConfig, OrchestratorConfig, UploadsConfig
from orchestrator.domain import BackendHealth, BackendInfo, DiarizerBackend, TranscriberBackend
from tests.fakes import FakeDiarizer, FakeTranscriber, serving, wav_bytes
from tests.gateway import GatewayServer, gateway_server
from whospoke.common.config import ServerConfig
from whospoke.v1 import audio_pb2
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import jobs_pb2_grpc as jobs_grpc

TOKEN = "secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GPU = audio_pb2.DeviceStats(
    backend="transcriber",
    gpu_index=0,
    gpu_name="NVIDIA H200",
    utilization_percent_avg=42.0,
    memory_used_bytes_avg=6 << 30,
    memory_total_bytes=141 << 30,
    samples=1,
)


@dataclass
class GpuTranscriber(FakeTranscriber):
    """The fake transcriber, saying which model it serves on which (pretend) GPU."""

    async def health(self) -> BackendHealth:
        info = BackendInfo(("fake-whisper",), "cuda:0", GPU)
        return BackendHealth("transcriber", "fake:1", True, info=info)


@dataclass
class ServingDiarizer(FakeDiarizer):
    """The fake diarizer, serving (the plain fake reports NOT_SERVING) on the CPU."""

    async def health(self) -> BackendHealth:
        info = BackendInfo(("fake-segmentation", "fake-embedding"), "cpu")
        return BackendHealth("diarizer", "fake:2", True, info=info)


@dataclass
class Stack:
    gateway: GatewayServer
    http: httpx2.AsyncClient
    channel: grpc.aio.Channel


@asynccontextmanager
async def stack(
    tmp: Path,
    tokens: tuple[str, ...] = (),
    gateway_token: str = "",
    transcriber: TranscriberBackend | None = None,
    diarizer: DiarizerBackend | None = None,
) -> AsyncIterator[Stack]:
    """An orchestrator (durable jobs polled quickly) and a gateway in front of it."""
    config = OrchestratorConfig(
        server=ServerConfig(port=0, auth_tokens=tokens),
        backends=BackendsConfig(),
        uploads=UploadsConfig(directory=tmp / "uploads", max_bytes=8 << 20, ttl_seconds=600),
        jobs=JobsConfig(data_dir=tmp / "jobs", poll_seconds=0.05),
    )
    backend = transcriber or GpuTranscriber()
    async with (
        serving(config, backend, diarizer or ServingDiarizer()) as port,
        gateway_server(port, upstream={"token": gateway_token}) as gateway,
        httpx2.AsyncClient(base_url=gateway.url, timeout=10) as http,
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        yield Stack(gateway, http, channel)


async def test_health_is_ready_when_every_service_serves(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        response = await s.http.get("/health")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ready"
        assert body["orchestrator"]["serving"] and body["orchestrator"]["state"] == "serving"
        by_name = {b["name"]: b for b in body["backends"]}
        assert by_name["transcriber"]["models"] == ["fake-whisper"]
        assert by_name["transcriber"]["gpu"]["name"] == "NVIDIA H200"
        assert by_name["diarizer"]["device"] == "cpu" and by_name["diarizer"]["gpu"] is None
        assert {b["state"] for b in body["backends"]} == {"serving"}


async def test_health_is_503_while_a_backend_has_not_served_yet(tmp_path: Path) -> None:
    async with stack(tmp_path, diarizer=FakeDiarizer()) as s:  # reports NOT_SERVING
        response = await s.http.get("/health")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "starting"
        diarizer = next(b for b in body["backends"] if b["name"] == "diarizer")
        assert diarizer["state"] == "starting" and diarizer["detail"] == "NOT_SERVING"


async def test_health_is_503_when_the_orchestrator_cannot_be_reached(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        port = int(s.gateway.state.config.upstream.address.rpartition(":")[2])
    async with (
        gateway_server(port) as gateway,  # the orchestrator is gone: nothing listens there
        httpx2.AsyncClient(base_url=gateway.url, timeout=10) as http,
    ):
        response = await http.get("/health")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "starting"  # never reached since the gateway started
        assert not body["orchestrator"]["reachable"] and body["backends"] == []
        assert body["orchestrator"]["detail"].startswith("UNAVAILABLE")


async def finished_job(s: Stack) -> str:
    """A durable job with a file name and a label, run to its end; its id."""
    stub = jobs_grpc.JobsStub(s.channel)
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    submitted = await stub.SubmitJob(
        jpb.SubmitJobRequest(
            audio=wav_bytes(2),
            filename="board-meeting.wav",
            labels=[jpb.Label(key="team", value="finance")],
        ),
        metadata=metadata,
        timeout=10,
    )
    watch = jpb.WatchJobRequest(job_id=submitted.job_id)
    events = [e async for e in stub.WatchJob(watch, metadata=metadata, timeout=10)]
    assert events[-1].HasField("result")
    get = jpb.GetJobRequest(job_id=submitted.job_id)
    deadline = asyncio.get_running_loop().time() + 10
    # The result is logged a moment before the job is stored as ended: poll for its state.
    while (await stub.GetJob(get, metadata=metadata)).state != jpb.JOB_STATE_SUCCEEDED:
        assert asyncio.get_running_loop().time() < deadline, "the job did not end"
        await asyncio.sleep(0.01)
    return submitted.job_id


async def transcribe(s: Stack, name: str = "standup.wav", seconds: float = 3) -> dict[str, Any]:
    files = {"file": (name, wav_bytes(seconds), "audio/wav")}
    data = {"model": "whisper-1", "response_format": "diarized_json"}
    response = await s.http.post("/v1/audio/transcriptions", files=files, data=data, headers=AUTH)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_status_shows_contents_only_to_callers_with_a_token(tmp_path: Path) -> None:
    async with stack(tmp_path, tokens=(TOKEN,), gateway_token=TOKEN) as s:
        job_id = await finished_job(s)
        await transcribe(s)
        full = (await s.http.get("/status", headers=AUTH)).json()
        assert full["view"] == "full" and full["health"]["status"] == "ready"
        recent = {item["source"]: item for item in full["recent"]}
        job, mine = recent["job"], recent["gateway"]
        assert job["id"] == job_id and job["filename"] == "board-meeting.wav"
        assert job["labels"] == {"team": "finance"} and job["audio_seconds"] == 2.0
        assert job["real_time_factor"] is not None
        assert mine["filename"] == "standup.wav" and mine["state"] == "succeeded"
        assert {line["speaker"] for line in mine["lines"]} == {"SPEAKER_00", "SPEAKER_01"}
        assert full["throughput"]["audio_seconds"] == 5.0
        assert full["throughput"]["finished"] == 2
        assert full["orchestrator"]["job_queue"]["store"] == "sqlite"
        assert full["orchestrator"]["max_concurrent_jobs"] == 1

        for headers in ({}, {"Authorization": "Bearer wrong"}):
            hidden = (await s.http.get("/status", headers=headers)).json()
            assert hidden["view"] == "redacted"
            assert [i["id"] for i in hidden["recent"]] == [i["id"] for i in full["recent"]]
            assert hidden["throughput"]["audio_seconds"] == 5.0
            text = repr(hidden)
            for secret in ("board-meeting", "finance", "standup", "one two"):
                assert secret not in text
            assert all("filename" not in i and "lines" not in i for i in hidden["recent"])


async def test_status_without_any_token_shows_only_health(tmp_path: Path) -> None:
    async with stack(tmp_path, tokens=(TOKEN,)) as s:  # the gateway has no token of its own
        await transcribe(s)
        anonymous = (await s.http.get("/status")).json()
        assert anonymous["view"] == "health"
        assert anonymous["health"]["orchestrator"]["serving"]  # health stays open
        assert anonymous["health"]["backends"] == []
        assert anonymous["recent"] == [] and anonymous["orchestrator"] is None
        assert "UNAUTHENTICATED" in anonymous["detail"]
        mine = (await s.http.get("/status", headers=AUTH)).json()
        assert mine["view"] == "full" and mine["recent"][0]["filename"] == "standup.wav"
        health = await s.http.get("/health")
        assert health.status_code == 200 and health.json()["backends"] == []


async def test_metrics_count_requests_by_route(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        assert (await s.http.get("/health")).status_code == 200
        response = await s.http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        lines = response.text.splitlines()
        counted = [
            line
            for line in lines
            if line.startswith("whospoke_http_requests_total{") and 'route="/health"' in line
        ]
        assert len(counted) == 1 and counted[0].endswith(" 1.0")
        assert 'service="gateway"' in counted[0] and 'status="200"' in counted[0]


async def test_the_dashboard_is_served_with_its_files_only(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        page = await s.http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert 'href="/docs"' in page.text and "/static/dashboard.js" in page.text
        script = await s.http.get("/static/dashboard.js")
        assert script.status_code == 200 and "innerHTML" not in script.text
        assert (await s.http.get("/static/dashboard.css")).status_code == 200
        for path in ("/static/index.html", "/static/..%2Fops.py", "/static/nothing.js"):
            missing = await s.http.get(path)
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert (await s.http.get("/docs")).status_code == 200
