"""`whospoke submit|job|jobs|cancel` against a gRPC server with a scripted Jobs service.

The CLI runs in-process (`run([...])` in a worker thread with its own event loop, as
tests/integration/test_cli.py does); the server is a small fake that records what it
was sent and answers from a table of jobs, so each case checks what a person or a
script sees (exit code, stdout, stderr) and what reached the server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeAlias

import grpc
import pytest

from tests.integration.test_cli import cli
from whospoke.cli import jobs as jobs_cli
from whospoke.cli import jobs_watch
from whospoke.contract.results import result_to_dict
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import jobs_pb2_grpc as jpb_grpc
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
S = jpb.JobState


def result() -> pb.ProcessResult:
    hello = pb.AttributedWord(start_seconds=0.0, end_seconds=0.5, text=" hello")
    segments = [
        pb.AttributedSegment(end_seconds=1.0, text=" hello", speaker="SPEAKER_00", words=[hello]),
        pb.AttributedSegment(start_seconds=1, end_seconds=2, text=" there", speaker="SPEAKER_01"),
    ]
    return pb.ProcessResult(text="hello there", language="en", segments=segments)


def events(final: pb.ProcessResult) -> list[pb.ProcessEvent]:
    """A whole job's events, numbered from 1 as a job's event log is."""
    script = [
        pb.ProcessEvent(stage=pb.StageStarted(stage=pb.STAGE_DECODING)),
        pb.ProcessEvent(progress=pb.Progress(decoding_percent=100)),
        pb.ProcessEvent(stage=pb.StageStarted(stage=pb.STAGE_TRANSCRIBING)),
        pb.ProcessEvent(stage=pb.StageStarted(stage=pb.STAGE_DIARIZING)),
        pb.ProcessEvent(progress=pb.Progress(transcription_percent=60, segment_count=1)),
        *(pb.ProcessEvent(warning=warning) for warning in final.warnings),
        pb.ProcessEvent(stage=pb.StageStarted(stage=pb.STAGE_MERGING)),
        pb.ProcessEvent(result=final),
    ]
    for number, event in enumerate(script, start=1):
        event.sequence = number
    return script


class FakeJobs(jpb_grpc.JobsServicer):
    """Jobs by id; `breaks[id]` ends the first watch after that many events (UNAVAILABLE)."""

    def __init__(self) -> None:
        self.jobs: dict[str, jpb.Job] = {}
        self.events: dict[str, list[pb.ProcessEvent]] = {}
        self.breaks: dict[str, int] = {}
        self.submitted: list[jpb.SubmitJobRequest] = []
        self.watches: list[jpb.WatchJobRequest] = []
        self.listed: list[jpb.ListJobsRequest] = []
        self.page_size = 2

    async def SubmitJob(
        self, request: jpb.SubmitJobRequest, context: Context
    ) -> jpb.SubmitJobResponse:
        self.submitted.append(request)
        for job in self.jobs.values():
            if request.idempotency_key and job.idempotency_key == request.idempotency_key:
                return jpb.SubmitJobResponse(job_id=job.job_id, existing=True)
        job_id = f"job-{len(self.jobs) + 1}"
        self.jobs[job_id] = jpb.Job(
            job_id=job_id, state=S.JOB_STATE_QUEUED, idempotency_key=request.idempotency_key
        )
        return jpb.SubmitJobResponse(job_id=job_id, queue_position=len(self.jobs))

    async def _job(self, job_id: str, context: Context) -> jpb.Job:
        if job_id not in self.jobs:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job_id: no job {job_id!r}")
        return self.jobs[job_id]

    async def GetJob(self, request: jpb.GetJobRequest, context: Context) -> jpb.Job:
        return await self._job(request.job_id, context)

    async def ListJobs(
        self, request: jpb.ListJobsRequest, context: Context
    ) -> jpb.ListJobsResponse:
        self.listed.append(request)
        wanted = {(label.key, label.value) for label in request.labels}
        found = [
            job
            for job in reversed(self.jobs.values())
            if request.state in (S.JOB_STATE_UNSPECIFIED, job.state)
            and wanted <= {(label.key, label.value) for label in job.labels}
        ]
        start = int(request.page_token or 0)
        end = start + min(request.page_size, self.page_size)
        return jpb.ListJobsResponse(
            jobs=found[start:end], next_page_token=str(end) if end < len(found) else ""
        )

    async def DeleteJob(
        self, request: jpb.DeleteJobRequest, context: Context
    ) -> jpb.DeleteJobResponse:
        self.jobs.pop((await self._job(request.job_id, context)).job_id)
        return jpb.DeleteJobResponse()

    async def CancelJob(self, request: jpb.CancelJobRequest, context: Context) -> jpb.Job:
        job = await self._job(request.job_id, context)
        if job.state in (S.JOB_STATE_QUEUED, S.JOB_STATE_RUNNING):
            job.state = S.JOB_STATE_CANCELLED
        return job

    async def WatchJob(
        self, request: jpb.WatchJobRequest, context: Context
    ) -> AsyncIterator[pb.ProcessEvent]:
        self.watches.append(request)
        job = await self._job(request.job_id, context)
        stop = self.breaks.pop(request.job_id, None)
        for event in self.events.get(request.job_id, []):
            if event.sequence > request.after_sequence:
                if stop is not None and event.sequence > stop:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "server shutting down")
                yield event
        if job.state == S.JOB_STATE_FAILED:
            await context.abort(getattr(grpc.StatusCode, job.error.code), job.error.message)
        if job.state == S.JOB_STATE_CANCELLED:
            await context.abort(grpc.StatusCode.CANCELLED, f"job {job.job_id} was cancelled")


class FakeUploads(pb_grpc.OrchestratorServicer):
    """Only `Upload` and `DeleteUpload`: the rest is never called (hence `ignore[abstract]`)."""

    def __init__(self) -> None:
        self.received = b""
        self.deleted: list[str] = []

    async def Upload(
        self, request_iterator: AsyncIterator[pb.UploadChunk], context: Context
    ) -> pb.UploadResponse:
        async for chunk in request_iterator:
            self.received += chunk.data
        return pb.UploadResponse(upload_id="upload-1")

    async def DeleteUpload(
        self, request: pb.DeleteUploadRequest, context: Context
    ) -> pb.DeleteUploadResponse:
        self.deleted.append(request.upload_id)
        return pb.DeleteUploadResponse()


@asynccontextmanager
async def serving(jobs: FakeJobs, uploads: FakeUploads | None = None) -> AsyncIterator[str]:
    server = grpc.aio.server()
    jpb_grpc.add_JobsServicer_to_server(jobs, server)
    uploads = uploads or FakeUploads()  # type: ignore[abstract]
    pb_grpc.add_OrchestratorServicer_to_server(uploads, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


@pytest.fixture(autouse=True)
def no_client_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SERVER", "TOKEN", "TLS", "TLS_CA", "TLS_CERT", "TLS_KEY", "TLS_SERVER_NAME"):
        monkeypatch.delenv(f"WHOSPOKE_{name}", raising=False)
    monkeypatch.setattr(jobs_watch, "RECONNECT_DELAYS", (0.0, 0.0, 0.0))


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    """Any bytes do: the fake server does not decode them."""
    path = tmp_path / "talk.wav"
    path.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    return path


def finished(jobs: FakeJobs, job_id: str, final: pb.ProcessResult) -> None:
    jobs.jobs[job_id] = jpb.Job(job_id=job_id, state=S.JOB_STATE_SUCCEEDED, result=final)
    jobs.events[job_id] = events(final)


async def test_submit_prints_the_id_alone_and_sends_options_labels_and_webhook(
    recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = FakeJobs()
    flags = ["--language", "en", "--speakers", "2", "--hotwords", "Ada", "--require-diarization"]
    flags += ["--webhook", "https://example.org/hook", "--idempotency-key", "k-1"]
    flags += ["--label", "team=sales", "--label", "env=prod"]
    async with serving(jobs) as server:
        first = await cli(capsys, "submit", str(recording), "--server", server, *flags)
        again = await cli(capsys, "submit", str(recording), "--server", server, *flags)
    assert (first.code, first.out) == (0, "job-1\n")
    assert first.lines == ["whospoke: queued job job-1 at position 1"]
    assert (again.code, again.out) == (0, "job-1\n"), "the same key returns the same job"
    assert again.lines == ["whospoke: matched earlier job job-1"]
    sent = jobs.submitted[0]
    assert sent.audio == await asyncio.to_thread(recording.read_bytes)
    assert sent.filename == "talk.wav"
    assert (sent.options.language, sent.options.num_speakers) == ("en", 2)
    assert sent.options.hotwords == "Ada" and sent.options.require_diarization
    assert sent.webhook_url == "https://example.org/hook" and sent.idempotency_key == "k-1"
    assert [(label.key, label.value) for label in sent.labels] == [
        ("team", "sales"),
        ("env", "prod"),
    ]


async def test_a_large_file_is_uploaded_first_and_the_upload_deleted(
    recording: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_cli, "INLINE_LIMIT", 100)
    jobs, uploads = FakeJobs(), FakeUploads()  # type: ignore[abstract]
    async with serving(jobs, uploads) as server:
        outcome = await cli(capsys, "submit", str(recording), "--server", server, "-q")
    assert (outcome.code, outcome.out, outcome.err) == (0, "job-1\n", "")
    assert jobs.submitted[0].upload_id == "upload-1" and not jobs.submitted[0].audio
    assert uploads.received == await asyncio.to_thread(recording.read_bytes)
    assert uploads.deleted == ["upload-1"]


async def test_job_wait_shows_progress_reconnects_and_writes_the_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs, final = FakeJobs(), result()
    finished(jobs, "job-1", final)
    jobs.breaks["job-1"] = 3  # the first stream breaks after three events
    to_file, srt_file = tmp_path / "talk.json", tmp_path / "talk.srt"
    async with serving(jobs) as server:
        waited = await cli(capsys, "job", "job-1", "--wait", "--server", server)
        as_json = await cli(
            capsys, "job", "job-1", "--wait", "--server", server, "-o", str(to_file)
        )
        srt = await cli(
            capsys, "job", "job-1", "--wait", "--format", "srt", "-o", str(srt_file), "-q",
            "--server", server,
        )  # fmt: skip
        plain = await cli(capsys, "job", "job-1", "--format", "json", "--server", server)
    assert waited.code == 0 and json.loads(waited.out) == result_to_dict(final)
    assert [w.after_sequence for w in jobs.watches[:2]] == [0, 3], "resumed after event 3"
    for row in ("decoding", "transcribing", "diarizing", "merging"):
        assert row in waited.err
    assert waited.err.count("100.0 %") == 4, "every row completes once"
    assert as_json.code == 0 and f"wrote {to_file}" in as_json.err
    assert json.loads(to_file.read_text()) == result_to_dict(final)
    assert (srt.code, srt.out, srt.err) == (0, "", ""), "-q: nothing on stderr"
    assert srt_file.read_text().startswith("1\n00:00:00,000 --> 00:00:01,000\n[SPEAKER_00] hello")
    assert plain.code == 0 and plain.out == waited.out, "no --wait: the result at once"


async def test_submit_wait_reports_the_id_on_stderr_and_the_result_on_stdout(
    recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs, final = FakeJobs(), result()
    final.warnings.add(code="diarization_failed", message="diarizer down")
    jobs.events["job-1"] = events(final)  # the job it queues will have these events
    async with serving(jobs) as server:
        outcome = await cli(
            capsys, "submit", str(recording), "--wait", "--format", "txt", "-q", "--server", server
        )
    assert outcome.code == 3, "a stage failed: a partial result, as with `process`"
    assert outcome.out == "SPEAKER_00: hello\nSPEAKER_01: there\n"
    assert outcome.lines[0] == "whospoke: queued job job-1 at position 1"
    assert outcome.lines[1].startswith("whospoke: warning: diarization_failed: diarizer down")
    assert outcome.lines[2].startswith("whospoke: partial result: diarization failed")


async def test_jobs_lists_newest_first_across_pages_with_filters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    jobs = FakeJobs()
    for number in range(1, 6):
        job = jpb.Job(
            job_id=f"job-{number}",
            state=S.JOB_STATE_SUCCEEDED,
            filename=f"f{number}.wav",
            labels=[jpb.Label(key="team", value="a" if number < 5 else "b")],
        )
        if number % 2 == 0:
            job.state, job.error.code, job.error.message = S.JOB_STATE_FAILED, "INTERNAL", "x"
        jobs.jobs[job.job_id] = job
    async with serving(jobs) as server:
        table = await cli(capsys, "jobs", "--server", server, "--state", "succeeded")
        limited = await cli(capsys, "jobs", "--server", server, "--limit", "3", "--format", "json")
        labelled = await cli(
            capsys, "jobs", "--server", server, "--label", "team=a", "--state", "SUCCEEDED",
            "--format", "json",
        )  # fmt: skip
    assert table.code == 0
    rows = [line.split() for line in table.out.splitlines()]
    assert rows[0][:3] == ["ID", "STATE", "SUBMITTED"]
    assert [row[0] for row in rows[1:]] == ["job-5", "job-3", "job-1"]
    assert all(row[1] == "succeeded" for row in rows[1:])
    assert {r.state for r in jobs.listed[:2]} == {S.JOB_STATE_SUCCEEDED}
    assert [r.page_token for r in jobs.listed[:2]] == ["", "2"], "followed next_page_token"
    listed = json.loads(limited.out)
    assert [j["job_id"] for j in listed] == ["job-5", "job-4", "job-3"]
    assert listed[1]["state"] == "failed" and listed[1]["error"]["code"] == "INTERNAL"
    assert listed[0]["labels"] == {"team": "b"}
    assert [j["job_id"] for j in json.loads(labelled.out)] == ["job-3", "job-1"]


async def test_cancel_prints_the_state_it_leaves(capsys: pytest.CaptureFixture[str]) -> None:
    jobs = FakeJobs()
    jobs.jobs["job-1"] = jpb.Job(job_id="job-1", state=S.JOB_STATE_RUNNING)
    jobs.jobs["job-2"] = jpb.Job(job_id="job-2", state=S.JOB_STATE_SUCCEEDED)
    async with serving(jobs) as server:
        running = await cli(capsys, "cancel", "job-1", "--server", server)
        done = await cli(capsys, "cancel", "job-2", "--server", server)
        waited = await cli(capsys, "job", "job-1", "--wait", "--server", server)
    assert (running.code, running.out, running.err) == (0, "cancelled\n", "")
    assert (done.code, done.out) == (0, "succeeded\n")
    assert done.lines == ["whospoke: job job-2 had already ended: nothing to cancel"]
    assert waited.code == 1
    assert waited.lines[-1] == "whospoke: error: job job-1 was cancelled. It has no result."
    assert jobs.jobs["job-1"].state == S.JOB_STATE_CANCELLED


async def test_a_failed_job_exits_1_with_its_error_as_process_would(
    capsys: pytest.CaptureFixture[str],
) -> None:
    jobs = FakeJobs()
    error = jpb.JobError(code="UNAVAILABLE", message="diarizer: connection\nrefused")
    jobs.jobs["job-1"] = jpb.Job(job_id="job-1", state=S.JOB_STATE_FAILED, error=error)
    jobs.events["job-1"] = events(result())[:2]
    async with serving(jobs) as server:
        waited = await cli(capsys, "job", "job-1", "--wait", "--server", server, "-q")
        asked = await cli(capsys, "job", "job-1", "--format", "srt", "--server", server)
        summary = await cli(capsys, "job", "job-1", "--server", server)
    line = (
        "whospoke: error: UNAVAILABLE: diarizer: connection refused. The orchestrator's "
        f"diarizer failed: see `whospoke health --server {server}`."
    )
    assert (waited.code, waited.out, waited.lines) == (1, "", [line])
    assert len(jobs.watches) == 1, "a job that failed UNAVAILABLE is not a lost server"
    assert (asked.code, asked.lines) == (1, [line])
    assert summary.code == 0
    assert "error       UNAVAILABLE: diarizer: connection refused" in summary.out.splitlines()


async def test_unknown_ids_exit_1_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    jobs = FakeJobs()
    async with serving(jobs) as server:
        outcomes = [
            await cli(capsys, *argv, "--server", server)
            for argv in (["job", "nope"], ["job", "nope", "--wait"], ["cancel", "nope"])
        ]
    for outcome in outcomes:
        assert (outcome.code, outcome.out) == (1, "")
        assert outcome.lines == ["whospoke: error: NOT_FOUND: job_id: no job 'nope'"]


async def test_a_wait_gives_up_after_reconnecting_to_a_server_that_stays_away(
    capsys: pytest.CaptureFixture[str],
) -> None:
    jobs = FakeJobs()
    jobs.jobs["job-1"] = jpb.Job(job_id="job-1", state=S.JOB_STATE_RUNNING)
    async with serving(jobs) as server:
        pass  # gone before the wait starts
    outcome = await cli(capsys, "job", "job-1", "--wait", "--server", server, "-q")
    assert outcome.code == 1 and len(outcome.lines) == 1
    assert outcome.lines[0].startswith(
        "whospoke: error: UNAVAILABLE: cannot reach the orchestrator"
    )
