"""The `whospoke.v1.Jobs` servicer: durable jobs over the store and the replica's queue.

Submitting stores the job and its audio (the job owns a copy, so an upload may
expire while it waits) and returns at once; any replica sharing the store may
run it. Reads go to the store, so every replica answers for every job.
`WatchJob` replays the job's stored events and then follows new ones: woken at
once for jobs running on this replica, by polling for the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

import grpc

from orchestrator.domain import JobOptions
from orchestrator.ids import new_id
from orchestrator.jobs_convert import (
    checked_idempotency_key,
    checked_job_id,
    checked_labels,
    checked_text,
    job_to_pb,
)
from orchestrator.options import options_from_pb
from orchestrator.queue import JobQueue
from orchestrator.sources import requested_audio
from orchestrator.store import JobRecord, JobState, NewJob, Page, in_thread
from orchestrator.uploads import UploadStore
from whospoke.common import tracing
from whospoke.common.auth import client_identity
from whospoke.common.errors import (
    Cancelled,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    error_for_code,
    quoted,
)
from whospoke.v1 import jobs_pb2 as jobs
from whospoke.v1 import jobs_pb2_grpc as jobs_grpc
from whospoke.v1 import orchestrator_pb2 as pb

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
SERVICE_NAME = jobs.DESCRIPTOR.services_by_name["Jobs"].full_name
CHUNK_BYTES = 1 << 20
DEFAULT_PAGE = 50
MAX_PAGE = 1000


class JobsServicer(jobs_grpc.JobsServicer):
    def __init__(
        self,
        queue: JobQueue,
        uploads: UploadStore,
        validate_webhook: Callable[[str], Awaitable[str]],
        check_options: Callable[[JobOptions], Awaitable[None]],
        max_inline_bytes: int,
        max_audio_seconds: float,
        trust_tokens: bool = False,
    ) -> None:
        self._queue = queue
        self._store = queue.store
        self._config = queue.config
        self._uploads = uploads
        self._validate_webhook = validate_webhook
        self._check_options = check_options
        self._max_inline_bytes = max_inline_bytes
        self._max_audio_seconds = max_audio_seconds
        self._trust_tokens = trust_tokens

    async def SubmitJob(
        self, request: jobs.SubmitJobRequest, context: Context
    ) -> jobs.SubmitJobResponse:
        options = options_from_pb(request.options)  # fails now, not when the job runs
        await self._check_options(options)
        new = NewJob(
            job_id=new_id(),
            client=client_identity(context, self._trust_tokens),
            options=request.options.SerializeToString(),
            filename=checked_text(request.filename[:255], "filename"),
            webhook_url=await self._validate_webhook(request.webhook_url),
            idempotency_key=checked_idempotency_key(request.idempotency_key),
            labels=checked_labels(list(request.labels)),
        )
        if new.idempotency_key:  # a retry: the job exists even if its upload is gone now
            found = await in_thread(partial(self._store.find, new.client, new.idempotency_key))
            if found is not None:
                return jobs.SubmitJobResponse(
                    job_id=found.job_id,
                    queue_position=await in_thread(
                        partial(self._store.queue_position, found.job_id)
                    ),
                    existing=True,
                )
        chunks, filename = await self._audio(request)
        if filename and not new.filename:
            new = NewJob(**{**new.__dict__, "filename": filename})
        stats = await in_thread(self._store.stats)
        if stats.queued >= self._config.max_queued:
            raise ResourceExhausted(
                f"the job queue holds {stats.queued} jobs, its limit; retry later"
            )
        try:
            record, existing = await in_thread(lambda: self._store.submit(new, chunks()))
        except FileNotFoundError:
            raise NotFound(
                "upload_id: the upload was deleted while the job was submitted"
            ) from None
        self._queue.wake()
        position = await in_thread(lambda: self._store.queue_position(record.job_id))
        tracing.annotate(tracing.JOB_ID, record.job_id)
        return jobs.SubmitJobResponse(
            job_id=record.job_id, queue_position=position, existing=existing
        )

    async def _audio(
        self, request: jobs.SubmitJobRequest
    ) -> tuple[Callable[[], Iterator[bytes]], str]:
        """The audio as a chunk iterator (consumed in the store's thread) and a file name."""
        found = await requested_audio(
            request, self._uploads, self._max_inline_bytes, self._max_audio_seconds
        )
        if isinstance(found, bytes):
            return (lambda: _byte_chunks(found)), ""
        path = await asyncio.to_thread(self._uploads.path, found.upload_id)
        return (lambda: _file_chunks(path)), found.filename

    async def GetJob(self, request: jobs.GetJobRequest, context: Context) -> jobs.Job:
        record = await self._existing(request.job_id)
        position = 0
        if record.state is JobState.QUEUED:
            position = await in_thread(lambda: self._store.queue_position(record.job_id))
        return job_to_pb(record, time.time(), position)

    async def _existing(self, job_id: str) -> JobRecord:
        checked_job_id(job_id)
        tracing.annotate(tracing.JOB_ID, job_id)
        record = await in_thread(lambda: self._store.get(job_id))
        if record is None:
            raise NotFound(f"job_id: no job {quoted(job_id)} (never submitted, or deleted)")
        if record.state is JobState.EXPIRED:
            ttl = self._config.result_ttl_seconds
            raise NotFound(
                f"job_id: job {quoted(job_id)} has expired: its result was deleted "
                f"{ttl:.0f} s after it ended"
            )
        return record

    async def ListJobs(
        self, request: jobs.ListJobsRequest, context: Context
    ) -> jobs.ListJobsResponse:
        size = request.page_size or DEFAULT_PAGE
        if size > MAX_PAGE:
            raise InvalidArgument(f"page_size: {size} is above {MAX_PAGE}")
        after = _page_from_token(request.page_token)
        if request.state and int(request.state) not in {int(s) for s in JobState}:
            raise InvalidArgument(f"state: {request.state} is not a job state")
        state = JobState(request.state) if request.state else None
        labels = checked_labels(list(request.labels))
        records = await in_thread(lambda: self._store.list(state, labels, size + 1, after))
        positions = await in_thread(lambda: self._positions(records[:size]))
        now = time.time()
        response = jobs.ListJobsResponse(
            jobs=[job_to_pb(r, now, positions.get(r.job_id, 0)) for r in records[:size]]
        )
        if len(records) > size:
            last = records[size - 1]
            response.next_page_token = f"{last.submitted_at!r}/{last.job_id}"
        return response

    def _positions(self, records: list[JobRecord]) -> dict[str, int]:
        """Queue positions of the queued jobs among `records`. Blocking."""
        queued = [r.job_id for r in records if r.state is JobState.QUEUED]
        return {job_id: self._store.queue_position(job_id) for job_id in queued}

    async def CancelJob(self, request: jobs.CancelJobRequest, context: Context) -> jobs.Job:
        await self._existing(request.job_id)
        ttl = self._config.result_ttl_seconds
        record = await in_thread(lambda: self._store.cancel(request.job_id, ttl))
        if record is None:
            raise NotFound(f"job_id: no job {quoted(request.job_id)}")
        self._queue.cancel_local(record.job_id)
        self._queue.signals.notify(record.job_id)
        return job_to_pb(record, time.time())

    async def DeleteJob(
        self, request: jobs.DeleteJobRequest, context: Context
    ) -> jobs.DeleteJobResponse:
        checked_job_id(request.job_id)
        self._queue.cancel_local(request.job_id)
        if not await in_thread(lambda: self._store.delete(request.job_id)):
            raise NotFound(f"job_id: no job {quoted(request.job_id)} (never submitted, or deleted)")
        self._queue.signals.notify(request.job_id)
        return jobs.DeleteJobResponse()

    async def WatchJob(
        self, request: jobs.WatchJobRequest, context: Context
    ) -> AsyncIterator[pb.ProcessEvent]:
        job_id = (await self._existing(request.job_id)).job_id
        after, position = request.after_sequence, 0
        while True:
            signal = self._queue.signals.listen(job_id)
            events = await in_thread(partial(self._store.events, job_id, after))
            for sequence, data in events:
                event = pb.ProcessEvent.FromString(data)
                event.sequence, after = sequence, sequence
                if not event.HasField("result"):
                    yield event
                    continue
                record = await self._settled(job_id)
                if record.state is JobState.SUCCEEDED:
                    yield event
                    return
                if record.state.ended:
                    _raise_ending(record)
                # Otherwise that attempt lost its lease before its end was stored: the job
                # runs again, and its result comes later in the log.
            if events:
                continue
            record = await self._existing(job_id)
            if record.state.ended:
                if await in_thread(partial(self._store.events, job_id, after)):
                    continue  # stored between our read and its end: they come first
                _raise_ending(record)
                return
            if record.state is JobState.QUEUED:
                now = await in_thread(lambda: self._store.queue_position(job_id))
                if now != position:
                    position = now
                    yield pb.ProcessEvent(
                        elapsed_seconds=time.time() - record.submitted_at,
                        queued=pb.Queued(position=position),
                    )
            await self._queue.signals.wait(signal, self._config.poll_seconds)

    async def _settled(self, job_id: str) -> JobRecord:
        """The job once the end its result event announces is stored (or it was re-queued):
        a watcher must not see a result that `GetJob` does not have yet."""
        while True:
            signal = self._queue.signals.listen(job_id)
            record = await self._existing(job_id)
            if record.state is not JobState.RUNNING:
                return record
            await self._queue.signals.wait(signal, self._config.poll_seconds)


def _raise_ending(record: JobRecord) -> None:
    """End a watch of a job that ended without a result the way `Process` would have."""
    if record.state is JobState.CANCELLED:
        raise Cancelled(f"job {record.job_id} was cancelled")
    if record.state is JobState.FAILED:
        raise error_for_code(record.error_code, record.error_message)


def _page_from_token(token: str) -> Page | None:
    if not token:
        return None
    stamp, _, job_id = token.partition("/")
    try:
        return Page(float(stamp), checked_job_id(job_id))
    except (ValueError, InvalidArgument):
        raise InvalidArgument(f"page_token: {quoted(token)} is not a page token") from None


def _byte_chunks(data: bytes) -> Iterator[bytes]:
    for offset in range(0, len(data), CHUNK_BYTES):
        yield data[offset : offset + CHUNK_BYTES]


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk
