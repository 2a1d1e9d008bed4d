"""`GetStatus` says what each backend runs: its models, its device and its GPU now.

The real transcriber and diarizer servicers run fake engines (one as if on CUDA,
with a fake NVML); the real orchestrator asks them over gRPC. A backend that does
not answer `GetInfo` is reported without models, and `GetStatus` still succeeds.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import grpc
import pytest

from orchestrator.backends import BackendSettings, GrpcDiarizer, GrpcTranscriber
from tests.fakes import FakeDiarizationEngine, FakeTranscriptionEngine, serve
from tests.integration.test_backend_errors import ScriptedDiarizer, scripted
from tests.integration.test_device_stats import (
    CudaDiarizationEngine,
    CudaTranscriptionEngine,
    diarizer,
    running,
    transcriber,
)
from tests.unit.test_gpu import GIB, FakeNvml
from whospoke.cli.client import backend_line
from whospoke.common.metrics import Metrics
from whospoke.v1 import diarizer_pb2, diarizer_pb2_grpc
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import transcriber_pb2 as tpb
from whospoke.v1 import transcriber_pb2_grpc as tpb_grpc


async def status(t_address: str, d_address: str, tmp: Path) -> pb.OrchestratorStatus:
    backends = (
        GrpcTranscriber(BackendSettings(t_address)),
        GrpcDiarizer(BackendSettings(d_address)),
    )
    try:
        async with serve(*backends, tmp) as stub:
            reply: pb.OrchestratorStatus = await stub.GetStatus(pb.GetStatusRequest(), timeout=10)
            return reply
    finally:
        for backend in backends:
            await backend.close()


async def test_the_services_info_carries_one_gpu_sample_on_cuda_only() -> None:
    nvml = FakeNvml(utilization=(35,), used=(4 * GIB,))
    async with (
        running(transcriber(CudaTranscriptionEngine(), nvml), Metrics("t")) as on_gpu,
        running(diarizer(FakeDiarizationEngine(), nvml), Metrics("d")) as on_cpu,
        grpc.aio.insecure_channel(on_gpu) as t_channel,
        grpc.aio.insecure_channel(on_cpu) as d_channel,
    ):
        t_info = await tpb_grpc.TranscriberStub(t_channel).GetInfo(tpb.GetTranscriberInfoRequest())
        d_info = await diarizer_pb2_grpc.DiarizerStub(d_channel).GetInfo(
            diarizer_pb2.GetDiarizerInfoRequest()
        )
    assert t_info.HasField("gpu") and (t_info.gpu.gpu_index, t_info.gpu.samples) == (1, 1)
    assert t_info.gpu.utilization_percent_max == 35.0
    assert t_info.gpu.memory_used_bytes_max == 4 * GIB
    assert not d_info.HasField("gpu") and nvml.lookups == [("index", 1)]


async def test_status_names_each_backends_models_device_and_gpu(tmp_path: Path) -> None:
    t_nvml, d_nvml = FakeNvml(utilization=(35,)), FakeNvml(utilization=(80,), used=(6 * GIB,))
    async with (
        running(transcriber(CudaTranscriptionEngine(), t_nvml), Metrics("t")) as t_address,
        running(diarizer(CudaDiarizationEngine(), d_nvml), Metrics("d")) as d_address,
    ):
        reply = await status(t_address, d_address, tmp_path)
    t, d = reply.backends
    assert (t.name, t.serving, list(t.models), t.device) == (
        "transcriber",
        True,
        ["fake"],
        "cuda:1",
    )
    assert (t.gpu.backend, t.gpu.gpu_index, t.gpu.utilization_percent_avg) == ("transcriber", 1, 35)
    assert (d.name, d.serving, list(d.models), d.device) == (
        "diarizer",
        True,
        ["seg", "emb"],
        "cuda:0",
    )
    assert (d.gpu.backend, d.gpu.memory_used_bytes_max) == ("diarizer", 6 * GIB)
    assert backend_line(d) == (
        "models seg, emb; on cuda:0; NVIDIA Fake 80GB 80 % busy, 6.0 of 8.0 GiB used"
    )


async def test_backends_on_the_cpu_have_no_gpu(tmp_path: Path) -> None:
    nvml = FakeNvml()
    async with (
        running(transcriber(FakeTranscriptionEngine(), nvml), Metrics("t")) as t_address,
        running(diarizer(FakeDiarizationEngine(), nvml), Metrics("d")) as d_address,
    ):
        reply = await status(t_address, d_address, tmp_path)
    assert [(b.device, b.HasField("gpu")) for b in reply.backends] == [
        ("cpu", False),
        ("cpu", False),
    ]
    assert nvml.inits == 0
    assert backend_line(reply.backends[0]) == "models fake; on cpu"


class Hanging(ScriptedDiarizer):
    """A diarizer that never answers `GetInfo` (and has no health service)."""

    async def GetInfo(self, request: Any, context: Any) -> diarizer_pb2.DiarizerInfo:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_backend_that_does_not_answer_is_reported_without_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orchestrator.backends.HEALTH_TIMEOUT_SECONDS", 0.3)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    async with scripted(Hanging(grpc.StatusCode.OK, "")) as d_address:
        reply = await status(closed, d_address, tmp_path)
    t, d = reply.backends
    assert not t.serving and "UNAVAILABLE" in t.detail
    assert not d.serving and d.detail.startswith("UNIMPLEMENTED")
    assert [(list(b.models), b.device, b.HasField("gpu")) for b in reply.backends] == [
        ([], "", False),
        ([], "", False),
    ]
