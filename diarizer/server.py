"""The `whospoke.v1.Diarizer` servicer: protobuf in and out, the engine in between.

On a GPU, the device is sampled (`whospoke.common.gpu`) from the first audio to
the clustering's end and the result carries the figures; on the CPU its
`device` stays unset. `GetInfo` carries one sample of the GPU as it is now.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, TypeAlias

import grpc

from diarizer.config import DiarizerConfig
from diarizer.domain import DiarizationEngine, DiarizationSession
from whospoke.common.errors import Unavailable
from whospoke.common.feeder import StreamLimits
from whospoke.common.gpu import PROCESS_MONITOR, GpuMonitor, cuda_index, snapshot
from whospoke.common.limiter import Limiter
from whospoke.common.metrics import Metrics
from whospoke.common.server import ServiceSpec
from whospoke.common.streaming import PROGRESS, StreamAdmission, open_stream, run_session
from whospoke.contract.diarization import live_turns_to_pb, options_from_pb, result_to_pb
from whospoke.v1 import diarizer_pb2 as pb
from whospoke.v1 import diarizer_pb2_grpc as pb_grpc

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Diarizer"].full_name


class DiarizerServicer(pb_grpc.DiarizerServicer):
    def __init__(
        self,
        engine: DiarizationEngine,
        limiter: Limiter,
        metrics: Metrics,
        limits: StreamLimits,
        gpu: GpuMonitor = PROCESS_MONITOR,
    ) -> None:
        self._engine = engine
        self._gpu = gpu
        self._limiter = limiter
        self._metrics = metrics
        self._limits = limits

    async def GetInfo(
        self, request: pb.GetDiarizerInfoRequest, context: Context
    ) -> pb.DiarizerInfo:
        info = self._engine.info()
        gpu = await asyncio.to_thread(
            snapshot, self._gpu, cuda_index(info.device, info.device_index)
        )
        return pb.DiarizerInfo(
            segmentation_model=info.segmentation_model,
            embedding_model=info.embedding_model,
            embedding_mode=info.embedding_mode,
            device=info.device,
            clustering_method=info.clustering_method,
            clustering_threshold=info.clustering_threshold,
            min_cluster_size=info.min_cluster_size,
            window_step_seconds=info.window_step_seconds,
            max_concurrent_streams=self._limiter.max_running,
            max_queued_streams=self._limiter.max_queued,
            ready=self._engine.ready,
            gpu=gpu,
        )

    async def Diarize(
        self, request_iterator: AsyncIterator[pb.DiarizeRequest], context: Context
    ) -> AsyncIterator[pb.DiarizeResponse]:
        config, requests = await open_stream(request_iterator, self._limits, "DiarizeRequest")
        options = options_from_pb(config)
        if not self._engine.ready:
            raise Unavailable("the diarization models are still loading; retry shortly")
        async with self._limiter.ticket():
            started = time.perf_counter()
            session = self._engine.open_session(options)

            def position() -> float:
                return session.received_seconds + session.analysed_seconds

            info = self._engine.info()
            async with self._gpu.watch(cuda_index(info.device, info.device_index)) as gpu:
                stream = run_session(session, requests, self._limits, "DiarizeRequest", position)
                async with aclosing(stream):
                    async for item in stream:
                        if item is PROGRESS:
                            for response in _live(session):
                                yield response
                            yield pb.DiarizeResponse(
                                progress=pb.DiarizationProgress(
                                    received_seconds=session.received_seconds,
                                    analysed_seconds=session.analysed_seconds,
                                )
                            )
                for response in _live(session):
                    yield response
                output = await asyncio.to_thread(session.finish)
            elapsed = time.perf_counter() - started
            self._metrics.record_job(session.received_seconds, elapsed)
            result = result_to_pb(output, config, session.received_seconds, elapsed)
            if gpu.stats is not None:
                result.device.CopyFrom(gpu.stats)
            yield pb.DiarizeResponse(result=result)


def _live(session: DiarizationSession) -> list[pb.DiarizeResponse]:
    """The live turns found since the last call, if any (a stream that asked for them)."""
    live = session.live_turns()
    return [pb.DiarizeResponse(live=live_turns_to_pb(live))] if live.turns else []


def build_spec(
    config: DiarizerConfig,
    engine: DiarizationEngine,
    metrics: Metrics,
    gpu: GpuMonitor = PROCESS_MONITOR,
) -> ServiceSpec:
    """Wire an engine into a servicer; tests pass a fake engine (and fake NVML) here."""
    admission = StreamAdmission.of(config, metrics)
    servicer = DiarizerServicer(engine, admission.limiter, metrics, admission.limits, gpu)

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_DiarizerServicer_to_server(servicer, server)

    return ServiceSpec("diarizer", [SERVICE_NAME], register, engine.load)
