"""GPU statistics per job, end to end, with fake engines and a fake NVML (no GPU here).

The real transcriber and diarizer servicers, given an engine that says it runs
on CUDA, sample the fake NVML and put the figures into their final message; on
the CPU they leave the field unset. The real orchestrator, talking gRPC to both,
names each backend and puts the figures into `ProcessResult.devices`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np

from diarizer.config import DiarizerConfig
from diarizer.domain import DiarizerEngineInfo
from diarizer.engine import DiarizerModelConfig
from diarizer.server import build_spec as diarizer_spec
from orchestrator.backends import BackendSettings, GrpcDiarizer, GrpcTranscriber
from tests.fakes import (
    FakeDiarizationEngine,
    FakeDiarizer,
    FakeTranscriber,
    FakeTranscriptionEngine,
    serve,
    wav_bytes,
)
from tests.unit.test_gpu import GIB, FakeNvml
from transcriber.config import ModelConfig, TranscriberConfig
from transcriber.domain import EngineInfo
from transcriber.server import build_spec as transcriber_spec
from whospoke.common.audio import SAMPLE_RATE, iter_chunks
from whospoke.common.config import ServerConfig
from whospoke.common.gpu import GpuMonitor
from whospoke.common.metrics import Metrics
from whospoke.common.server import ServiceSpec, start_server
from whospoke.contract.results import result_to_dict
from whospoke.v1 import diarizer_pb2 as dpb
from whospoke.v1 import diarizer_pb2_grpc as dpb_grpc
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import transcriber_pb2 as tpb
from whospoke.v1 import transcriber_pb2_grpc as tpb_grpc


class CudaTranscriptionEngine(FakeTranscriptionEngine):
    """The fake engine, as if faster-whisper ran on `device="cuda", device_index=1`."""

    def info(self) -> EngineInfo:
        return replace(super().info(), device="cuda", device_index=1)


class CudaDiarizationEngine(FakeDiarizationEngine):
    """The fake engine, as if the pyannote models had moved to CUDA device 0."""

    def info(self) -> DiarizerEngineInfo:
        return replace(super().info(), device="cuda", device_index=0)


def gpus(nvml: FakeNvml) -> GpuMonitor:
    return GpuMonitor(lambda: nvml, interval=3600.0, environ={})


@asynccontextmanager
async def running(spec: ServiceSpec, metrics: Metrics) -> AsyncIterator[str]:
    """The service on a free port; yields its address."""
    server = await start_server(ServerConfig(port=0), spec, metrics)
    await server.set_serving(True)
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(0)


def transcriber(engine: FakeTranscriptionEngine, nvml: FakeNvml) -> ServiceSpec:
    config = TranscriberConfig(server=ServerConfig(port=0), model=ModelConfig(model="fake"))
    return transcriber_spec(config, engine, Metrics("transcriber"), gpus(nvml))


def diarizer(engine: FakeDiarizationEngine, nvml: FakeNvml) -> ServiceSpec:
    config = DiarizerConfig(server=ServerConfig(port=0), model=DiarizerModelConfig())
    return diarizer_spec(config, engine, Metrics("diarizer"), gpus(nvml))


async def summary_of(address: str) -> tpb.TranscriptionSummary:
    samples = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    requests = [tpb.TranscribeRequest(config=tpb.TranscriptionConfig())]
    requests += [tpb.TranscribeRequest(audio=c) for c in iter_chunks(samples, 1.0)]

    async def stream() -> AsyncIterator[tpb.TranscribeRequest]:
        for request in requests:
            yield request

    async with grpc.aio.insecure_channel(address) as channel:
        responses = [r async for r in tpb_grpc.TranscriberStub(channel).Transcribe(stream())]
    assert responses[-1].WhichOneof("response") == "summary"
    return responses[-1].summary


async def diarization_of(address: str) -> dpb.DiarizationResult:
    samples = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    requests = [dpb.DiarizeRequest(config=dpb.DiarizationConfig())]
    requests += [dpb.DiarizeRequest(audio=c) for c in iter_chunks(samples, 1.0)]

    async def stream() -> AsyncIterator[dpb.DiarizeRequest]:
        for request in requests:
            yield request

    async with grpc.aio.insecure_channel(address) as channel:
        responses = [r async for r in dpb_grpc.DiarizerStub(channel).Diarize(stream())]
    assert responses[-1].WhichOneof("response") == "result"
    return responses[-1].result


async def test_the_transcriber_on_cuda_sends_the_stats_with_its_summary() -> None:
    nvml = FakeNvml()
    spec = transcriber(CudaTranscriptionEngine(), nvml)
    async with running(spec, Metrics("transcriber")) as address:
        summary = await summary_of(address)
    assert summary.segment_count == 2 and summary.HasField("device")
    device = summary.device
    assert (device.gpu_index, device.gpu_name, device.samples) == (1, "NVIDIA Fake 80GB", 2)
    assert device.utilization_percent_avg == 30.0 and device.utilization_percent_max == 50.0
    assert device.memory_used_bytes_max == 3 * GIB and device.memory_total_bytes == 8 * GIB
    assert nvml.lookups == [("index", 1)]


async def test_the_transcriber_on_the_cpu_leaves_device_unset() -> None:
    nvml = FakeNvml()
    async with running(transcriber(FakeTranscriptionEngine(), nvml), Metrics("t")) as address:
        summary = await summary_of(address)
    assert summary.segment_count == 2 and not summary.HasField("device")
    assert nvml.inits == 0


async def test_nvml_failing_leaves_device_unset_and_the_stream_succeeds() -> None:
    nvml = FakeNvml(init_error=RuntimeError("Driver Not Loaded"))
    async with running(transcriber(CudaTranscriptionEngine(), nvml), Metrics("t")) as address:
        summary = await summary_of(address)
    assert summary.segment_count == 2 and not summary.HasField("device")


async def test_the_diarizer_on_cuda_sends_the_stats_with_its_result_and_not_on_the_cpu() -> None:
    nvml = FakeNvml()
    async with running(diarizer(CudaDiarizationEngine(), nvml), Metrics("d")) as address:
        on_gpu = await diarization_of(address)
    async with running(diarizer(FakeDiarizationEngine(), nvml), Metrics("d")) as address:
        on_cpu = await diarization_of(address)
    assert on_gpu.HasField("device") and len(on_gpu.turns) == 2
    assert (on_gpu.device.gpu_index, on_gpu.device.samples) == (0, 2)
    assert on_gpu.device.memory_used_bytes_avg == 2 * GIB
    assert not on_cpu.HasField("device") and len(on_cpu.turns) == 2


async def test_the_orchestrator_puts_each_backends_stats_into_the_result(tmp_path: Path) -> None:
    t_nvml, d_nvml = FakeNvml(), FakeNvml(utilization=(90,), used=(5 * GIB,))
    async with (
        running(transcriber(CudaTranscriptionEngine(), t_nvml), Metrics("t")) as t_address,
        running(diarizer(CudaDiarizationEngine(), d_nvml), Metrics("d")) as d_address,
    ):
        backends = (
            GrpcTranscriber(BackendSettings(t_address)),
            GrpcDiarizer(BackendSettings(d_address)),
        )
        async with serve(*backends, tmp_path) as stub:
            request = pb.ProcessRequest(audio=wav_bytes(2))
            events = [e async for e in stub.Process(request, timeout=10)]
        for backend in backends:
            await backend.close()
    result = events[-1].result
    assert [(d.backend, d.gpu_index) for d in result.devices] == [
        ("diarizer", 0),
        ("transcriber", 1),
    ]
    assert result.devices[0].utilization_percent_max == 90.0
    assert result.devices[0].memory_used_bytes_avg == 5 * GIB
    assert result.devices[1].utilization_percent_avg == 30.0
    devices = result_to_dict(result)["devices"]
    assert [d["backend"] for d in devices] == ["diarizer", "transcriber"]
    assert devices[1]["samples"] == 2 and devices[1]["gpu_name"] == "NVIDIA Fake 80GB"


async def test_backends_on_the_cpu_give_no_devices(tmp_path: Path) -> None:
    async with serve(FakeTranscriber(), FakeDiarizer(), tmp_path) as stub:
        events = [e async for e in stub.Process(pb.ProcessRequest(audio=wav_bytes(1)), timeout=10)]
    result = events[-1].result
    assert result.text and list(result.devices) == []
    assert result_to_dict(result)["devices"] == []
