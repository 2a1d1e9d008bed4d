"""The `whospoke.v1.Orchestrator` servicer: protobuf in and out, the job runner in between."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

import grpc

from orchestrator import spool
from orchestrator.config import JobsConfig, OrchestratorConfig
from orchestrator.convert import event_to_pb
from orchestrator.domain import BackendHealth, DiarizerBackend, JobOptions, TranscriberBackend
from orchestrator.durable import DurableJobs
from orchestrator.jobs import JobRunner, Source
from orchestrator.jobs_convert import stats_to_pb
from orchestrator.jobs_server import SERVICE_NAME as JOBS_SERVICE
from orchestrator.jobs_server import JobsServicer
from orchestrator.live import LiveLimits, LiveStreams
from orchestrator.options import options_from_pb
from orchestrator.pools import TranscriberPools
from orchestrator.quotas import UploadLimits
from orchestrator.sources import requested_audio
from orchestrator.speakers import SERVICE_NAME as SPEAKERS_SERVICE
from orchestrator.speakers import KnownSpeakers, SpeakersServicer
from orchestrator.store import StoreUnavailable
from orchestrator.uploads import UploadInfo, UploadStore
from whospoke.common import tracing
from whospoke.common.auth import client_identity
from whospoke.common.errors import InvalidArgument
from whospoke.common.feeder import idle_guarded
from whospoke.common.limiter import Limiter
from whospoke.common.metrics import Metrics
from whospoke.common.server import ServiceSpec
from whospoke.v1 import jobs_pb2_grpc as jobs_grpc
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc
from whospoke.v1 import speakers_pb2_grpc as speakers_grpc

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Orchestrator"].full_name


class OrchestratorServicer(pb_grpc.OrchestratorServicer):
    def __init__(
        self,
        transcriber: TranscriberBackend | TranscriberPools,
        diarizer: DiarizerBackend,
        limiter: Limiter,
        uploads: UploadStore,
        metrics: Metrics,
        spool_dir: Path,
        max_inline_bytes: int = 32 << 20,
        max_audio_seconds: float = float("inf"),
        idle_seconds: float = 30.0,
        trust_tokens: bool = False,
        live: LiveLimits | None = None,
        diarization_start: str = "with-transcription",
    ) -> None:
        live = live or LiveLimits(max_seconds=max_audio_seconds)
        self._diarizer = diarizer
        self._limiter = limiter
        self._uploads = uploads
        self._metrics = metrics
        self._max_inline_bytes = max_inline_bytes
        self._max_audio_seconds = max_audio_seconds
        self._idle_seconds = idle_seconds
        self._trust_tokens = trust_tokens
        self.runner = JobRunner(
            transcriber, diarizer, limiter, spool_dir, max_audio_seconds, diarization_start
        )
        self.durable: DurableJobs | None = None
        self.live = LiveStreams(self.runner, spool_dir, live)

    async def Process(
        self, request: pb.ProcessRequest, context: Context
    ) -> AsyncIterator[pb.ProcessEvent]:
        options = options_from_pb(request.options)
        await self.runner.check(options)
        source = await self._source(request)
        started = time.perf_counter()
        async for event in self.runner.run(source, options):
            message = event_to_pb(event, time.perf_counter() - started)
            if message.HasField("result"):
                result = message.result
                self._metrics.record_job(
                    result.audio_duration_seconds, result.timings.total_seconds
                )
            yield message

    async def ProcessStream(
        self, request_iterator: AsyncIterator[pb.ProcessStreamRequest], context: Context
    ) -> AsyncIterator[pb.ProcessEvent]:
        requests = idle_guarded(request_iterator, self._idle_seconds, "ProcessStreamRequest")
        first = await anext(requests, None)
        if first is None or first.WhichOneof("request") != "config":
            raise InvalidArgument("config: the first message carries the stream's config")
        started = time.perf_counter()
        async for event in self.live.run(requests, first.config):
            yield event_to_pb(event, time.perf_counter() - started)

    async def _source(self, request: pb.ProcessRequest) -> Source:
        found = await requested_audio(
            request, self._uploads, self._max_inline_bytes, self._max_audio_seconds
        )
        if isinstance(found, bytes):
            return lambda: found
        tracing.annotate(tracing.UPLOAD_ID, found.upload_id)
        return partial(self._uploads.path, found.upload_id)

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
        pools, diarizer = await asyncio.gather(self.runner.pools.health(), self._diarizer.health())
        status = pb.OrchestratorStatus(
            backends=[_backend_status(b) for b in [*pools, diarizer]],
            jobs_running=self._limiter.running,
            jobs_queued=self._limiter.queued,
            max_concurrent_jobs=self._limiter.max_running,
            max_queued_jobs=self._limiter.max_queued,
            max_upload_bytes=self._uploads.max_bytes,
        )
        if self.durable is not None:
            queue = self.durable.queue
            try:
                stats = await queue.refresh_stats()
            except StoreUnavailable:
                stats = queue.state.stats  # the last known figures; health says why
            status.job_queue.CopyFrom(
                stats_to_pb(stats, self.durable.store.kind, queue.state.running_here)
            )
        return status


def _backend_status(backend: BackendHealth) -> pb.BackendStatus:
    return pb.BackendStatus(
        name=backend.name,
        address=backend.address,
        serving=backend.serving,
        detail=backend.detail,
        models=backend.info.models,
        device=backend.info.device,
        gpu=backend.info.gpu,
        pool=backend.pool,
        replicas=[
            pb.ReplicaStatus(address=r.address, serving=r.serving, detail=r.detail)
            for r in backend.replicas
        ],
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
    transcriber: TranscriberBackend | TranscriberPools,
    diarizer: DiarizerBackend,
    metrics: Metrics,
) -> ServiceSpec:
    """Wire backends into a servicer; tests pass fake backends here."""
    durable: list[DurableJobs] = []

    def on_load_change(running: int, queued: int) -> None:
        metrics.set_load(running, queued)
        for jobs in durable:
            jobs.queue.wake()  # a slot may have come free for a durable job

    limiter = Limiter(config.max_concurrent_jobs, config.max_queued_jobs, on_change=on_load_change)
    u = config.uploads
    uploads = _upload_store(config)
    spool_dir = spool.own_directory(u.directory / "spool")
    servicer = _servicer(config, transcriber, diarizer, limiter, uploads, metrics, spool_dir)
    servicer.durable = DurableJobs(
        config.jobs or JobsConfig(data_dir=u.directory / "jobs"),
        servicer.runner,
        limiter,
        spool_dir,
        metrics,
    )
    durable.append(servicer.durable)
    jobs_servicer = _jobs_servicer(config, servicer.durable, uploads, servicer.runner.check)
    known = KnownSpeakers(servicer.durable.store.speakers(), diarizer, spool_dir)
    servicer.runner.known = known
    speakers = SpeakersServicer(known, uploads, config.max_inline_bytes)

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_OrchestratorServicer_to_server(servicer, server)
        jobs_grpc.add_JobsServicer_to_server(jobs_servicer, server)
        speakers_grpc.add_SpeakersServicer_to_server(speakers, server)

    def load() -> None:
        uploads.load()
        spool.claim(spool_dir)
        durable[0].load()

    return ServiceSpec(
        "orchestrator",
        [SERVICE_NAME, JOBS_SERVICE, SPEAKERS_SERVICE],
        register,
        load,
        background=durable[0],
    )


def _servicer(
    config: OrchestratorConfig,
    transcriber: TranscriberBackend | TranscriberPools,
    diarizer: DiarizerBackend,
    limiter: Limiter,
    uploads: UploadStore,
    metrics: Metrics,
    spool_dir: Path,
) -> OrchestratorServicer:
    return OrchestratorServicer(
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
        live=LiveLimits(
            config.max_live_streams, config.max_live_lag_seconds, config.max_audio_seconds
        ),
        diarization_start=config.diarization_start,
    )


def _upload_store(config: OrchestratorConfig) -> UploadStore:
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
    return UploadStore(u.directory, limits)


def _jobs_servicer(
    config: OrchestratorConfig,
    durable: DurableJobs,
    uploads: UploadStore,
    check: Callable[[JobOptions], Awaitable[None]],
) -> JobsServicer:
    return JobsServicer(
        durable.queue,
        uploads,
        durable.validate_webhook,
        check,
        max_inline_bytes=config.max_inline_bytes,
        max_audio_seconds=config.max_audio_seconds,
        trust_tokens=bool(config.server.auth_tokens),
    )
