"""The `whospoke.v1.Transcriber` servicer: protobuf in and out, the engine in between.

Reading the request stream and transcribing run concurrently: a reader task
validates chunks and feeds the session (pausing when too much audio is buffered,
which pushes back on the client through gRPC flow control), while the response
loop runs the session in a worker thread whenever new audio has arrived.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, TypeAlias

import grpc

from transcriber.config import TranscriberConfig
from transcriber.domain import TranscriptionEngine
from whospoke.common.errors import InvalidArgument, Unavailable
from whospoke.common.feeder import AudioFeeder, ProgressGate, StreamLimits, idle_guarded
from whospoke.common.limiter import Limiter
from whospoke.common.metrics import Metrics
from whospoke.common.server import ServiceSpec
from whospoke.common.threads import iterate_in_thread
from whospoke.contract.transcription import TranscriptionOptions, options_from_pb, segment_to_pb
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
    ) -> None:
        self._engine = engine
        self._limiter = limiter
        self._metrics = metrics
        self._model_name = model_name
        self._default_beam_size = default_beam_size
        self._limits = limits

    async def GetInfo(
        self, request: pb.GetTranscriberInfoRequest, context: Context
    ) -> pb.TranscriberInfo:
        info = self._engine.info()
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
        )

    async def Transcribe(
        self,
        request_iterator: AsyncIterator[pb.TranscribeRequest],
        context: Context,
    ) -> AsyncIterator[pb.TranscribeResponse]:
        requests = idle_guarded(request_iterator, self._limits.idle_seconds, "TranscribeRequest")
        first = await anext(requests, None)
        options = self._options(first)
        if not self._engine.ready:
            raise Unavailable("the Whisper model is still loading; retry shortly")
        self._engine.validate(options)
        async with self._limiter.ticket():
            started = time.perf_counter()
            session = self._engine.open_session(options)
            count, gate = 0, ProgressGate()
            async with AudioFeeder(requests, session, self._limits, "TranscribeRequest") as feeder:
                while True:
                    final = await feeder.wait_for_audio()
                    async for segment in iterate_in_thread(partial(session.run, final)):
                        count += 1
                        yield pb.TranscribeResponse(segment=segment_to_pb(segment))
                    feeder.drained()
                    if gate.due(session.received_seconds + session.transcribed_seconds, final):
                        yield pb.TranscribeResponse(
                            progress=pb.TranscriptionProgress(
                                received_seconds=session.received_seconds,
                                transcribed_seconds=session.transcribed_seconds,
                            )
                        )
                    if final:
                        break
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
                )
            )

    def _options(self, first: pb.TranscribeRequest | None) -> TranscriptionOptions:
        if first is None or first.WhichOneof("request") != "config":
            raise InvalidArgument(
                "config: the first TranscribeRequest must carry the config, "
                "audio chunks come after it"
            )
        return options_from_pb(first.config, self._default_beam_size)


def build_spec(
    config: TranscriberConfig, engine: TranscriptionEngine, metrics: Metrics
) -> ServiceSpec:
    """Wire an engine into a servicer; tests pass a fake engine here."""
    limiter = Limiter(
        config.max_concurrent_streams, config.max_queued_streams, on_change=metrics.set_load
    )
    servicer = TranscriberServicer(
        engine,
        limiter,
        metrics,
        model_name=config.model.model,
        default_beam_size=config.model.default_beam_size,
        limits=StreamLimits(
            config.max_buffer_seconds, config.server.stream_idle_seconds, config.min_chunk_seconds
        ),
    )

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_TranscriberServicer_to_server(servicer, server)

    return ServiceSpec("transcriber", [SERVICE_NAME], register, engine.load)
