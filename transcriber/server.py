"""The `whospoke.v1.Transcriber` servicer: protobuf in and out, the engine in between.

Reading the request stream and transcribing run concurrently: a reader task
validates chunks and feeds the session (pausing when too much audio is buffered,
which pushes back on the client through gRPC flow control), while the response
loop runs the session in a worker thread whenever new audio has arrived. The
session's segments, warnings and progress markers become responses in the order
it yields them. On a GPU, the device is sampled (`whospoke.common.gpu`) while
the stream is transcribed and the summary carries the figures; on the CPU its
`device` stays unset. `GetInfo` carries one sample of the GPU as it is now.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, TypeAlias

import grpc

from transcriber.config import TranscriberConfig
from transcriber.domain import Transcribed, TranscriptionEngine, TranscriptionSession
from whospoke.common.errors import Unavailable
from whospoke.common.feeder import StreamLimits
from whospoke.common.gpu import PROCESS_MONITOR, GpuMonitor, cuda_index, snapshot
from whospoke.common.limiter import Limiter
from whospoke.common.metrics import Metrics
from whospoke.common.server import ServiceSpec
from whospoke.common.streaming import Progress, StreamAdmission, open_stream, run_session
from whospoke.contract.transcription import (
    Segment,
    SpeechWarning,
    options_from_pb,
    segment_to_pb,
    share_to_pb,
    warning_to_pb,
)
from whospoke.v1 import transcriber_pb2 as pb
from whospoke.v1 import transcriber_pb2_grpc as pb_grpc

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Transcriber"].full_name


class TranscriberServicer(pb_grpc.TranscriberServicer):
    def __init__(
        self,
        engine: TranscriptionEngine,
        limiter: Limiter,
        metrics: Metrics,
        *,
        model_name: str,
        default_beam_size: int = 5,
        limits: StreamLimits,
        gpu: GpuMonitor = PROCESS_MONITOR,
    ) -> None:
        self._engine = engine
        self._gpu = gpu
        self._limiter = limiter
        self._metrics = metrics
        self._model_name = model_name
        self._default_beam_size = default_beam_size
        self._limits = limits

    async def GetInfo(
        self, request: pb.GetTranscriberInfoRequest, context: Context
    ) -> pb.TranscriberInfo:
        info = self._engine.info()
        gpu = await asyncio.to_thread(
            snapshot, self._gpu, cuda_index(info.device, info.device_index)
        )
        return pb.TranscriberInfo(
            model=info.model,
            device=info.device,
            device_index=info.device_index,
            compute_type=info.compute_type,
            multilingual=info.multilingual,
            languages=list(info.languages),
            max_concurrent_streams=self._limiter.max_running,
            max_queued_streams=self._limiter.max_queued,
            cpu_threads=info.cpu_threads,
            ready=self._engine.ready,
            gpu=gpu,
        )

    async def Transcribe(
        self,
        request_iterator: AsyncIterator[pb.TranscribeRequest],
        context: Context,
    ) -> AsyncIterator[pb.TranscribeResponse]:
        config, requests = await open_stream(request_iterator, self._limits, "TranscribeRequest")
        options = options_from_pb(config, self._default_beam_size)
        if not self._engine.ready:
            raise Unavailable("the Whisper model is still loading; retry shortly")
        self._engine.validate(options)
        async with self._limiter.ticket():
            started = time.perf_counter()
            session = self._engine.open_session(options)
            count = 0

            def position() -> float:
                return session.received_seconds + session.transcribed_seconds

            info = self._engine.info()
            async with self._gpu.watch(cuda_index(info.device, info.device_index)) as gpu:
                stream = run_session(session, requests, self._limits, "TranscribeRequest", position)
                async with aclosing(stream):
                    async for item in stream:
                        if isinstance(item, Segment):
                            count += 1
                        yield _response(item, session)
            elapsed = time.perf_counter() - started
            self._metrics.record_job(session.received_seconds, elapsed)
            language, probability = session.language
            yield pb.TranscribeResponse(
                summary=pb.TranscriptionSummary(
                    language=language,
                    language_probability=probability,
                    audio_duration_seconds=session.received_seconds,
                    processing_seconds=elapsed,
                    model=self._model_name,
                    segment_count=count,
                    device=gpu.stats,
                    languages=[share_to_pb(share) for share in session.languages],
                )
            )


def _response(
    item: Segment | SpeechWarning | Transcribed | Progress, session: TranscriptionSession
) -> pb.TranscribeResponse:
    """The reply for one thing the session yielded (or a progress tick of the stream)."""
    if isinstance(item, Segment):
        return pb.TranscribeResponse(segment=segment_to_pb(item))
    if isinstance(item, SpeechWarning):
        return pb.TranscribeResponse(warning=warning_to_pb(item))
    # The worker thread may already be further on: a marker carries its own value.
    done = item.seconds if isinstance(item, Transcribed) else session.transcribed_seconds
    return pb.TranscribeResponse(
        progress=pb.TranscriptionProgress(
            received_seconds=session.received_seconds, transcribed_seconds=done
        )
    )


def build_spec(
    config: TranscriberConfig,
    engine: TranscriptionEngine,
    metrics: Metrics,
    gpu: GpuMonitor = PROCESS_MONITOR,
) -> ServiceSpec:
    """Wire an engine into a servicer; tests pass a fake engine (and fake NVML) here."""
    admission = StreamAdmission.of(config, metrics)
    servicer = TranscriberServicer(
        engine,
        admission.limiter,
        metrics,
        model_name=config.model.model,
        default_beam_size=config.model.default_beam_size,
        limits=admission.limits,
        gpu=gpu,
    )

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_TranscriberServicer_to_server(servicer, server)

    return ServiceSpec("transcriber", [SERVICE_NAME], register, engine.load)
