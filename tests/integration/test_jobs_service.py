"""The Jobs service on a real in-process orchestrator (SQLite store, fake backends)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from prometheus_client import generate_latest
from standardwebhooks import Webhook

from orchestrator.config import JobsConfig
from tests.fakes import FakeDiarizer, FakeTranscriber, harness, wav_bytes
from whospoke.common.metrics import Metrics
from whospoke.contract.results import result_to_dict
from whospoke.v1 import jobs_pb2 as jobs
from whospoke.v1 import jobs_pb2_grpc as jobs_grpc
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc


@dataclass
class Jobs:
    stub: jobs_grpc.JobsAsyncStub
    orchestrator: pb_grpc.OrchestratorAsyncStub
    transcriber: FakeTranscriber
    metrics: Metrics


@asynccontextmanager
async def jobs_server(
    tmp: Path,
    hold: asyncio.Event | None = None,
    inline: int = 4 << 20,
    queued: int = 4,
    **settings: Any,
) -> AsyncIterator[Jobs]:
    transcriber = FakeTranscriber(hold=hold)
    config = JobsConfig(data_dir=tmp / "data", lease_seconds=0.6, poll_seconds=0.05, **settings)
    async with harness(
        transcriber, FakeDiarizer(), tmp, queued, jobs=config, max_inline_bytes=inline
    ) as h:
        yield Jobs(jobs_grpc.JobsStub(h.channel), h.stub, transcriber, h.metrics)


async def watch(
    stub: jobs_grpc.JobsAsyncStub, job_id: str, after: int = 0
) -> list[pb.ProcessEvent]:
    request = jobs.WatchJobRequest(job_id=job_id, after_sequence=after)
    return [e async for e in stub.WatchJob(request, timeout=20)]


async def until_stage(
    stub: jobs_grpc.JobsAsyncStub, job_id: str, stage: int
) -> list[pb.ProcessEvent]:
    """Watch until the job reaches `stage`; the events seen, then the stream is dropped."""
    seen: list[pb.ProcessEvent] = []
    call = stub.WatchJob(jobs.WatchJobRequest(job_id=job_id), timeout=20)
    async for event in call:
        seen.append(event)
        if event.HasField("stage") and event.stage.stage == stage:
            break
    call.cancel()
    return seen


def submit(audio_seconds: float = 2, **fields: Any) -> jobs.SubmitJobRequest:
    return jobs.SubmitJobRequest(audio=wav_bytes(audio_seconds), **fields)


async def test_job_runs_to_the_same_result_as_process(tmp_path: Path) -> None:
    async with jobs_server(tmp_path) as s:
        options = pb.ProcessOptions(min_speakers=2)
        submitted = await s.stub.SubmitJob(submit(3, options=options, filename="a.wav"))
        assert len(submitted.job_id) == 22 and submitted.queue_position in (0, 1)
        events = await watch(s.stub, submitted.job_id)
        job = await s.stub.GetJob(jobs.GetJobRequest(job_id=submitted.job_id))
        direct = [
            e
            async for e in s.orchestrator.Process(
                pb.ProcessRequest(audio=wav_bytes(3), options=options), timeout=10
            )
        ]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].HasField("result")
    assert job.state == jobs.JOB_STATE_SUCCEEDED and job.attempts == 1 and job.replica
    assert job.filename == "a.wav" and job.audio_bytes == len(wav_bytes(3))
    assert job.result.text == direct[-1].result.text == "one two one two one two"
    assert list(job.result.segments) == list(direct[-1].result.segments)
    assert job.HasField("end_time") and job.HasField("expire_time")
    assert job.timings.processing_seconds > 0
    assert job.timings.stages.total_seconds >= job.timings.stages.merge_seconds
    assert job.progress.overall_percent == pytest.approx(100)
    assert job.options.min_speakers == 2


async def test_watch_reconnects_mid_job_and_sees_every_event(tmp_path: Path) -> None:
    hold = asyncio.Event()
    async with jobs_server(tmp_path, hold=hold) as s:
        job_id = (await s.stub.SubmitJob(submit(3))).job_id
        first = await until_stage(s.stub, job_id, pb.STAGE_TRANSCRIBING)
        hold.set()
        rest = await watch(s.stub, job_id, after=first[-1].sequence)
        replay = await watch(s.stub, job_id)
    assert first[-1].sequence > 0 and rest[-1].HasField("result")
    assert [e.sequence for e in first + rest] == [e.sequence for e in replay]
    assert [e.SerializeToString() for e in first + rest] == [e.SerializeToString() for e in replay]


async def test_cancel_queued_and_running_jobs_frees_the_backends(tmp_path: Path) -> None:
    hold = asyncio.Event()
    async with jobs_server(tmp_path, hold=hold) as s:
        running = (await s.stub.SubmitJob(submit(2))).job_id
        await until_stage(s.stub, running, pb.STAGE_TRANSCRIBING)
        queued = await s.stub.SubmitJob(submit(2))
        assert queued.queue_position == 1
        cancelled = await s.stub.CancelJob(jobs.CancelJobRequest(job_id=queued.job_id))
        assert cancelled.state == jobs.JOB_STATE_CANCELLED
        await s.stub.CancelJob(jobs.CancelJobRequest(job_id=running))
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await watch(s.stub, running)
        await asyncio.wait_for(s.transcriber.cancelled.wait(), 10)
        job = await s.stub.GetJob(jobs.GetJobRequest(job_id=running))
        again = await s.stub.CancelJob(jobs.CancelJobRequest(job_id=running))
    assert error.value.code() == grpc.StatusCode.CANCELLED
    assert job.state == jobs.JOB_STATE_CANCELLED and job.error.code == "CANCELLED"
    assert again.state == jobs.JOB_STATE_CANCELLED


async def test_failed_job_keeps_the_error_and_watch_ends_with_it(tmp_path: Path) -> None:
    async with jobs_server(tmp_path) as s:
        job_id = (await s.stub.SubmitJob(jobs.SubmitJobRequest(audio=b"not audio"))).job_id
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await watch(s.stub, job_id)
        job = await s.stub.GetJob(jobs.GetJobRequest(job_id=job_id))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert job.state == jobs.JOB_STATE_FAILED and job.error.code == "INVALID_ARGUMENT"
    assert job.error.message == error.value.details()


async def test_idempotency_key_returns_the_same_job(tmp_path: Path) -> None:
    async with jobs_server(tmp_path) as s:
        first = await s.stub.SubmitJob(submit(1, idempotency_key="order-17"))
        second = await s.stub.SubmitJob(submit(1, idempotency_key="order-17"))
        other = await s.stub.SubmitJob(submit(1, idempotency_key="order-18"))
    assert second.job_id == first.job_id and second.existing and not first.existing
    assert other.job_id != first.job_id


async def test_finished_jobs_expire_after_their_ttl(tmp_path: Path) -> None:
    async with jobs_server(tmp_path, result_ttl_seconds=0.3) as s:
        job_id = (await s.stub.SubmitJob(submit(1))).job_id
        await watch(s.stub, job_id)
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            try:
                await s.stub.GetJob(jobs.GetJobRequest(job_id=job_id))
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND
                assert "expired" in (error.details() or "")
                break
            assert asyncio.get_running_loop().time() < deadline, "never expired"
            await asyncio.sleep(0.05)
        listed = await s.stub.ListJobs(jobs.ListJobsRequest(state=jobs.JOB_STATE_EXPIRED))
    assert [j.job_id for j in listed.jobs] == [job_id]


async def test_two_hundred_queued_jobs_listed_newest_first_in_pages(tmp_path: Path) -> None:
    hold = asyncio.Event()
    audio = wav_bytes(1)
    async with jobs_server(tmp_path, hold=hold) as s:
        ids = []
        for n in range(200):
            labels = [jobs.Label(key="batch", value="even" if n % 2 == 0 else "odd")]
            request = jobs.SubmitJobRequest(audio=audio, labels=labels)
            ids.append((await s.stub.SubmitJob(request)).job_id)
        seen, token = [], ""
        while True:
            page = await s.stub.ListJobs(jobs.ListJobsRequest(page_size=30, page_token=token))
            seen += [j.job_id for j in page.jobs]
            token = page.next_page_token
            if not token:
                break
        odd = await s.stub.ListJobs(
            jobs.ListJobsRequest(page_size=1000, labels=[jobs.Label(key="batch", value="odd")])
        )
        queued = await s.stub.ListJobs(
            jobs.ListJobsRequest(page_size=1000, state=jobs.JOB_STATE_QUEUED)
        )
        status = await s.orchestrator.GetStatus(pb.GetStatusRequest())
        last = await s.stub.GetJob(jobs.GetJobRequest(job_id=ids[-1]))
        hold.set()
    assert seen == ids[::-1]
    assert [j.job_id for j in odd.jobs] == ids[1::2][::-1]
    assert len(queued.jobs) >= 198 and all(not j.HasField("result") for j in queued.jobs)
    assert status.job_queue.queued >= 198 and status.job_queue.store == "sqlite"
    assert status.job_queue.oldest_queued_seconds > 0
    assert last.state == jobs.JOB_STATE_QUEUED and last.queue_position >= 198


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (jobs.SubmitJobRequest(), "audio"),
        (submit(1, webhook_url="ftp://example.com/hook"), "webhook_url"),
        (submit(1, webhook_url="http://127.0.0.1:9/hook"), "webhook_url"),
        (submit(1, labels=[jobs.Label(key="bad key", value="x")]), "labels"),
        (submit(1, idempotency_key="k" * 256), "idempotency_key"),
        (submit(1, options=pb.ProcessOptions(beam_size=99)), "options"),
    ],
)
async def test_bad_submissions_name_the_field(
    tmp_path: Path, request_: jobs.SubmitJobRequest, field: str
) -> None:
    async with jobs_server(tmp_path) as s:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await s.stub.SubmitJob(request_)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.value.details() or "").startswith(field)


async def test_unknown_and_malformed_ids(tmp_path: Path) -> None:
    async with jobs_server(tmp_path) as s:
        codes = []
        for job_id in ("nope", "A" * 22):
            for call in (
                s.stub.GetJob(jobs.GetJobRequest(job_id=job_id)),
                s.stub.CancelJob(jobs.CancelJobRequest(job_id=job_id)),
                s.stub.DeleteJob(jobs.DeleteJobRequest(job_id=job_id)),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await call
                codes.append(error.value.code())
        with pytest.raises(grpc.aio.AioRpcError) as bad_token:
            await s.stub.ListJobs(jobs.ListJobsRequest(page_token="garbage"))
    invalid, missing = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    assert codes == [invalid] * 3 + [missing] * 3
    assert (bad_token.value.details() or "").startswith("page_token")


async def test_inline_audio_over_the_limit_is_refused(tmp_path: Path) -> None:
    async with jobs_server(tmp_path) as s:
        big = jobs.SubmitJobRequest(audio=b"\0" * ((4 << 20) + 1))
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await s.stub.SubmitJob(big)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "upload_id" in (error.value.details() or "")


async def test_delete_removes_the_job_and_upload_jobs_keep_their_own_audio(
    tmp_path: Path,
) -> None:
    async with jobs_server(tmp_path) as s:

        async def chunks() -> AsyncIterator[pb.UploadChunk]:
            yield pb.UploadChunk(data=wav_bytes(2), filename="meeting.wav")

        upload = await s.orchestrator.Upload(chunks())
        job_id = (await s.stub.SubmitJob(jobs.SubmitJobRequest(upload_id=upload.upload_id))).job_id
        await s.orchestrator.DeleteUpload(pb.DeleteUploadRequest(upload_id=upload.upload_id))
        events = await watch(s.stub, job_id)
        job = await s.stub.GetJob(jobs.GetJobRequest(job_id=job_id))
        await s.stub.DeleteJob(jobs.DeleteJobRequest(job_id=job_id))
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await s.stub.GetJob(jobs.GetJobRequest(job_id=job_id))
    assert events[-1].result.audio_duration_seconds == pytest.approx(2)
    assert job.filename == "meeting.wav"
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_webhook_is_signed_and_carries_the_result_and_metrics_follow(
    tmp_path: Path,
) -> None:
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    received: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        received.append(Webhook(secret).verify(await request.read(), dict(request.headers)))
        arrived.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with jobs_server(tmp_path, webhook_secret=secret, webhook_allow_private=True) as s:
            url = f"http://127.0.0.1:{port}/hook"
            job_id = (await s.stub.SubmitJob(submit(2, webhook_url=url))).job_id
            await asyncio.wait_for(arrived.wait(), 20)
            job = await s.stub.GetJob(jobs.GetJobRequest(job_id=job_id))
            while job.webhook_delivery != jobs.WEBHOOK_DELIVERY_DELIVERED:
                await asyncio.sleep(0.02)  # the attempt is recorded after the answer
                job = await s.stub.GetJob(jobs.GetJobRequest(job_id=job_id))
            status = await s.orchestrator.GetStatus(pb.GetStatusRequest())
            scrape = generate_latest(s.metrics.registry).decode()
    finally:
        await runner.cleanup()
    [payload] = received
    assert payload["type"] == "job.succeeded" and payload["data"]["job_id"] == job_id
    assert payload["data"]["result"] == result_to_dict(job.result)
    assert [a.http_status for a in job.webhook_attempts] == [204]
    assert status.job_queue.succeeded == 1 and status.job_queue.average_processing_seconds > 0
    assert 'whospoke_jobs_finished_total{service="orchestrator",state="succeeded"} 1.0' in scrape
    assert 'whospoke_job_queue_jobs{service="orchestrator",state="succeeded"} 1.0' in scrape


async def test_a_replica_claims_no_more_jobs_than_it_has_slots(tmp_path: Path) -> None:
    hold = asyncio.Event()
    async with jobs_server(tmp_path, hold=hold, queued=1) as s:
        ids = [(await s.stub.SubmitJob(submit(2))).job_id for _ in range(8)]
        await until_stage(s.stub, ids[0], pb.STAGE_TRANSCRIBING)
        running = await s.stub.ListJobs(jobs.ListJobsRequest(state=jobs.JOB_STATE_RUNNING))
        hold.set()
        for job_id in ids:
            await watch(s.stub, job_id)
        done = [await s.stub.GetJob(jobs.GetJobRequest(job_id=i)) for i in ids]
    assert [j.job_id for j in running.jobs] == [ids[0]]
    assert [j.state for j in done] == [jobs.JOB_STATE_SUCCEEDED] * 8
    assert all(j.attempts == 1 for j in done)


async def test_an_unexpected_failure_ends_the_job_as_internal(tmp_path: Path) -> None:
    async with jobs_server(tmp_path) as s:
        s.transcriber.fail = KeyError("a bug")
        job_id = (await s.stub.SubmitJob(submit(2))).job_id
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await watch(s.stub, job_id)
        job = await s.stub.GetJob(jobs.GetJobRequest(job_id=job_id))
        status = await s.orchestrator.GetStatus(pb.GetStatusRequest())
    assert error.value.code() == grpc.StatusCode.INTERNAL
    assert job.state == jobs.JOB_STATE_FAILED and "KeyError" in job.error.message
    assert status.job_queue.running == 0 and status.job_queue.running_here == 0


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (submit(1, filename="a\0.wav"), "filename"),
        (submit(1, labels=[jobs.Label(key="k", value="v\0")]), "labels"),
        (submit(1, idempotency_key="key\n"), "idempotency_key"),
    ],
)
async def test_control_characters_are_refused(
    tmp_path: Path, request_: jobs.SubmitJobRequest, field: str
) -> None:
    async with jobs_server(tmp_path) as s:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await s.stub.SubmitJob(request_)
        with pytest.raises(grpc.aio.AioRpcError) as bad_state:
            await s.stub.ListJobs(jobs.ListJobsRequest(state=99))  # type: ignore[arg-type]
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.value.details() or "").startswith(field)
    assert (bad_state.value.details() or "").startswith("state")
