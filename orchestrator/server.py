"""The `whospoke.v1.Orchestrator` servicer: protobuf in and out, the job runner in between."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

import grpc

from orchestrator import spool
from orchestrator.config import OrchestratorConfig
from orchestrator.convert import event_to_pb
from orchestrator.domain import DiarizerBackend, JobOptions, TranscriberBackend
from orchestrator.jobs import JobRunner, Source
from orchestrator.quotas import UploadLimits
from orchestrator.uploads import UploadInfo, UploadStore
from whospoke.common.auth import client_identity
from whospoke.common.errors import InvalidArgument
from whospoke.common.feeder import idle_guarded
from whospoke.common.limiter import Limiter
from whospoke.common.metrics import Metrics
from whospoke.common.server import ServiceSpec
from whospoke.contract.diarization import options_from_pb as diarization_options
from whospoke.contract.transcription import options_from_pb as transcription_options
from whospoke.v1 import diarizer_pb2, transcriber_pb2
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Orchestrator"].full_name


class OrchestratorServicer(pb_grpc.OrchestratorServicer):
    def __init__(
        self,
        transcriber: TranscriberBackend,
        diarizer: DiarizerBackend,
        limiter: Limiter,
        uploads: UploadStore,
        metrics: Metrics,
        spool_dir: Path,
        max_inline_bytes: int = 32 << 20,
        max_audio_seconds: float = float("inf"),
        idle_seconds: float = 30.0,
        trust_tokens: bool = False,
    ) -> None:
        self._transcriber = transcriber
        self._diarizer = diarizer
        self._limiter = limiter
        self._uploads = uploads
        self._metrics = metrics
        self._max_inline_bytes = max_inline_bytes
        self._max_audio_seconds = max_audio_seconds
        self._idle_seconds = idle_seconds
        self._trust_tokens = trust_tokens
        self._runner = JobRunner(transcriber, diarizer, limiter, spool_dir, max_audio_seconds)

    async def Process(
        self, request: pb.ProcessRequest, context: Context
    ) -> AsyncIterator[pb.ProcessEvent]:
        options = options_from_pb(request.options)
        source = await self._source(request)
        started = time.perf_counter()
        async for event in self._runner.run(source, options):
            message = event_to_pb(event, time.perf_counter() - started)
            if message.HasField("result"):
                result = message.result
                self._metrics.record_job(
                    result.audio_duration_seconds, result.timings.total_seconds
                )
            yield message

    async def _source(self, request: pb.ProcessRequest) -> Source:
        kind = request.WhichOneof("source")
        if kind == "upload_id":
            upload_id = request.upload_id
            info = await asyncio.to_thread(self._uploads.info, upload_id)
            if info.duration_seconds > self._max_audio_seconds:
                raise InvalidArgument(
                    f"upload_id: {info.duration_seconds:.0f} s is longer than the "
                    f"{self._max_audio_seconds:.0f} s this server accepts"
                )
            return partial(self._uploads.path, upload_id)
        if kind == "audio" and len(request.audio) > self._max_inline_bytes:
            raise InvalidArgument(
                f"audio: {len(request.audio)} bytes is above the {self._max_inline_bytes} "
                "accepted inline; send the file with Upload and pass its upload_id"
            )
        if kind == "audio" and request.audio:
            data = request.audio
            return lambda: data
        raise InvalidArgument("audio: give the recording's bytes in `audio` or an `upload_id`")

    async def Upload(
        self, request_iterator: AsyncIterator[pb.UploadChunk], context: Context
    ) -> pb.UploadResponse:
        await asyncio.to_thread(self._uploads.sweep)
        client = client_identity(context, self._trust_tokens)
        requests = idle_guarded(request_iterator, self._idle_seconds, "UploadChunk")

        async def chunks() -> AsyncIterator[tuple[bytes, str]]:
            async for chunk in requests:
                yield chunk.data, chunk.filename

        info = await self._uploads.save(chunks(), client)
        return pb.UploadResponse(upload_id=info.upload_id, info=upload_info_pb(info))

    async def GetUpload(self, request: pb.GetUploadRequest, context: Context) -> pb.UploadInfo:
        return upload_info_pb(await asyncio.to_thread(self._uploads.info, request.upload_id))

    async def DeleteUpload(
        self, request: pb.DeleteUploadRequest, context: Context
    ) -> pb.DeleteUploadResponse:
        await asyncio.to_thread(self._uploads.delete, request.upload_id)
        return pb.DeleteUploadResponse()

    async def GetStatus(
        self, request: pb.GetStatusRequest, context: Context
    ) -> pb.OrchestratorStatus:
        backends = await asyncio.gather(self._transcriber.health(), self._diarizer.health())
        return pb.OrchestratorStatus(
            backends=[
                pb.BackendStatus(name=b.name, address=b.address, serving=b.serving, detail=b.detail)
                for b in backends
            ],
            jobs_running=self._limiter.running,
            jobs_queued=self._limiter.queued,
            max_concurrent_jobs=self._limiter.max_running,
            max_queued_jobs=self._limiter.max_queued,
            max_upload_bytes=self._uploads.max_bytes,
        )


def options_from_pb(options: pb.ProcessOptions) -> JobOptions:
    """Validate with the backends' own rules, naming `options.*` fields."""
    if options.skip_transcription and options.skip_diarization:
        raise InvalidArgument(
            "options.skip_transcription: cannot skip both transcription and diarization"
        )
    transcription = transcriber_pb2.TranscriptionConfig(
        language=options.language,
        task=options.task,
        beam_size=options.beam_size,
        initial_prompt=options.initial_prompt,
        hotwords=options.hotwords,
    )
    if options.HasField("word_timestamps"):
        transcription.word_timestamps = options.word_timestamps
    diarization = diarizer_pb2.DiarizationConfig()
    for name in ("num_speakers", "min_speakers", "max_speakers"):
        if options.HasField(name):
            setattr(diarization, name, getattr(options, name))
    return JobOptions(
        transcription=transcription_options(transcription, default_beam=0, field="options"),
        diarization=diarization_options(diarization, field="options"),
        skip_transcription=options.skip_transcription,
        skip_diarization=options.skip_diarization,
        require_diarization=options.require_diarization,
    )


def upload_info_pb(info: UploadInfo) -> pb.UploadInfo:
    return pb.UploadInfo(
        upload_id=info.upload_id,
        size_bytes=info.size_bytes,
        duration_seconds=info.duration_seconds,
        format=info.format,
        filename=info.filename,
        expires_in_seconds=max(0.0, info.expires_at - time.time()),
    )


def build_spec(
    config: OrchestratorConfig,
    transcriber: TranscriberBackend,
    diarizer: DiarizerBackend,
    metrics: Metrics,
) -> ServiceSpec:
    """Wire backends into a servicer; tests pass fake backends here."""
    limiter = Limiter(
        config.max_concurrent_jobs, config.max_queued_jobs, on_change=metrics.set_load
    )
    u = config.uploads
    limits = UploadLimits(
        max_bytes=u.max_bytes,
        max_total_bytes=u.max_total_bytes,
        max_client_bytes=u.max_client_bytes,
        max_concurrent=u.max_concurrent,
        max_client_concurrent=u.max_client_concurrent,
        ttl_seconds=u.ttl_seconds,
        max_audio_seconds=config.max_audio_seconds,
    )
    uploads = UploadStore(u.directory, limits)
    spool_dir = u.directory / "spool"
    servicer = OrchestratorServicer(
        transcriber,
        diarizer,
        limiter,
        uploads,
        metrics,
        spool_dir,
        max_inline_bytes=config.max_inline_bytes,
        max_audio_seconds=config.max_audio_seconds,
        idle_seconds=config.server.stream_idle_seconds,
        trust_tokens=bool(config.server.auth_tokens),
    )

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_OrchestratorServicer_to_server(servicer, server)

    def load() -> None:
        uploads.load()
        spool.clear(spool_dir)

    return ServiceSpec("orchestrator", [SERVICE_NAME], register, load)
