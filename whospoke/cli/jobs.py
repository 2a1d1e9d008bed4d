"""`whospoke submit | job | jobs | cancel`: the orchestrator's durable jobs from a shell.

`submit` prints the job id alone on stdout (`ID=$(whospoke submit f.wav)`), so a
script can hand it to `job`, `cancel` or a webhook receiver; everything meant for
people (queue position, progress) goes to stderr. As with `process`, everything
local (flags, files, labels) is checked before the event loop starts, and failed
calls leave as one-line `CliError`s with the documented exit codes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from rich.console import Console

from whospoke.cli.checks import check_options, input_file, output_file, read_input, speaker_warning
from whospoke.cli.client import (
    INLINE_LIMIT,
    Written,
    options_from_args,
    rpc_error,
    upload,
    warner,
    write_result,
)
from whospoke.cli.connect import Connection, connection
from whospoke.cli.errors import OK, UsageError
from whospoke.cli.jobs_view import (
    ENDED,
    job_failure,
    job_to_dict,
    jobs_table,
    not_finished,
    state_name,
    state_value,
    summary_lines,
)
from whospoke.cli.jobs_watch import Watcher
from whospoke.cli.progress import ProgressView
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import jobs_pb2_grpc as jpb_grpc
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

COMMANDS = ("submit", "job", "jobs", "cancel")
CALL_SECONDS = 60.0
"""Deadline of the one-answer calls (`GetJob`, `ListJobs`, `CancelJob`)."""
LABEL_KEY = re.compile(r"[A-Za-z0-9_.-]{1,63}")
MAX_LABELS = 16
PAGE_MAX = 1000


@dataclass(frozen=True)
class Waiting:
    """`--wait`: show progress until the job ends, then write its result like `process`."""

    written: Written
    quiet: bool
    timeout: float | None


@dataclass(frozen=True)
class Submission:
    """A checked `whospoke submit` command line; `request` lacks only the audio."""

    path: Path
    size: int
    request: jpb.SubmitJobRequest
    wait: Waiting | None
    quiet: bool
    timeout: float | None


def dispatch(args: argparse.Namespace) -> int:
    """Run a jobs command; the local checks come first, outside the event loop."""
    conn = connection(args)
    if args.command == "submit":
        return asyncio.run(submit(conn, prepare_submit(args)))
    if args.command == "job":
        return asyncio.run(show_job(conn, args.job_id, _result_wanted(args), wait=args.wait))
    if args.command == "jobs":
        if args.limit < 1:
            raise UsageError(f"--limit must be at least 1, got {args.limit}", "The default is 50.")
        request = jpb.ListJobsRequest(labels=parse_labels(args.labels))
        if args.state:
            request.state = state_value(args.state)
        return asyncio.run(list_jobs(conn, request, args.limit, args.format))
    return asyncio.run(cancel(conn, args.job_id))


def parse_labels(texts: list[str]) -> list[jpb.Label]:
    """`--label KEY=VALUE` flags, checked as the server would check them."""
    labels: list[jpb.Label] = []
    for text in texts:
        key, equals, value = text.partition("=")
        if not equals or not LABEL_KEY.fullmatch(key):
            raise UsageError(
                f"--label {text!r} is not KEY=VALUE",
                "A key is 1 to 63 letters, digits, '-', '_' or '.'.",
            )
        if len(value) > 255:
            raise UsageError(f"--label {key}: the value is over 255 characters", "Shorten it.")
        if any(label.key == key for label in labels):
            raise UsageError(f"--label {key} is given twice", "Give each key once.")
        labels.append(jpb.Label(key=key, value=value))
    if len(labels) > MAX_LABELS:
        raise UsageError(
            f"{len(labels)} labels given: a job takes at most {MAX_LABELS}", "Drop some."
        )
    return labels


def _waiting(args: argparse.Namespace, uri: str) -> Waiting:
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(
            f"--timeout must be more than 0 seconds, got {args.timeout:g}",
            "Leave it out to wait as long as the job takes.",
        )
    written = Written(args.format or "json", output_file(args.output), args.allow_partial, uri)
    return Waiting(written, args.quiet, args.timeout)


def prepare_submit(args: argparse.Namespace) -> Submission:
    """Check the command line and the file (blocking; runs before the event loop)."""
    check_options(args)
    path = input_file(args.file)
    webhook = args.webhook or ""
    if webhook and not webhook.lower().startswith(("http://", "https://")):
        raise UsageError(f"--webhook takes an http(s) URL, got {webhook!r}", "Such as https://…")
    key = args.idempotency_key or ""
    if len(key) > 255:
        raise UsageError("--idempotency-key is over 255 characters", "Use a shorter key.")
    request = jpb.SubmitJobRequest(
        options=options_from_args(args),
        webhook_url=webhook,
        idempotency_key=key,
        labels=parse_labels(args.labels),
        filename=path.name,
    )
    wait = _waiting(args, path.stem) if args.wait else None
    warning = speaker_warning(path, args.speakers, args.min_speakers)
    if warning:
        print(warning, file=sys.stderr)
    return Submission(path, path.stat().st_size, request, wait, args.quiet, args.timeout)


def _result_wanted(args: argparse.Namespace) -> Waiting | None:
    """`job ID` shows a summary, unless a result is asked for (--wait, --format or -o)."""
    if not (args.wait or args.format or args.output):
        return None
    return _waiting(args, args.job_id)


async def submit(conn: Connection, submission: Submission) -> int:
    """Queue the file; print the id (stdout), then wait for the result with --wait."""
    console = Console(stderr=True, quiet=submission.quiet)
    async with conn.channel() as channel:
        try:
            response = await _send(channel, conn, submission, console)
        except grpc.aio.AioRpcError as error:
            raise rpc_error(error, conn, submission.timeout) from error
        where = f"at position {response.queue_position}" if response.queue_position else ""
        said = "matched earlier job" if response.existing else "queued job"
        if submission.wait is None:
            print(response.job_id, flush=True)
            if not submission.quiet:
                print(f"whospoke: {said} {response.job_id} {where}".rstrip(), file=sys.stderr)
            return OK
        print(f"whospoke: {said} {response.job_id} {where}".rstrip(), file=sys.stderr)
        return await wait_for(channel, conn, response.job_id, submission.wait)


async def _send(
    channel: grpc.aio.Channel, conn: Connection, submission: Submission, console: Console
) -> jpb.SubmitJobResponse:
    """`SubmitJob` with the file inline, or uploaded first when it is large (as `process`)."""
    orchestrator = pb_grpc.OrchestratorStub(channel)
    request = jpb.SubmitJobRequest()
    request.CopyFrom(submission.request)
    uploaded = ""
    try:
        if submission.size > INLINE_LIMIT:
            with console.status(f"uploading {submission.path.name}..."):
                uploaded = await upload(orchestrator, submission.path, conn.metadata)
            request.upload_id = uploaded
        else:
            request.audio = await asyncio.to_thread(read_input, submission.path)
        response: jpb.SubmitJobResponse = await jpb_grpc.JobsStub(channel).SubmitJob(
            request, timeout=submission.timeout, metadata=conn.metadata
        )
        return response
    finally:
        if uploaded:  # the job keeps its own copy; the server drops the upload anyway later
            with contextlib.suppress(grpc.aio.AioRpcError):
                await orchestrator.DeleteUpload(
                    pb.DeleteUploadRequest(upload_id=uploaded), metadata=conn.metadata, timeout=10
                )


async def wait_for(
    channel: grpc.aio.Channel, conn: Connection, job_id: str, waiting: Waiting
) -> int:
    """Live progress from `WatchJob` until the job ends, then its result as `process` writes it."""
    console = Console(stderr=True, quiet=waiting.quiet)
    watcher = Watcher(channel, conn, job_id, waiting.timeout)
    try:
        with ProgressView(console, warner(console, waiting.quiet)) as view:
            result = await watcher.result(view)
    except asyncio.CancelledError:  # Ctrl-C: the job itself goes on
        print(
            f"whospoke: job {job_id} goes on; `whospoke job {job_id} --wait` waits again",
            file=sys.stderr,
        )
        raise
    return await write_result(result, waiting.written, console, failed_stages(result))


def failed_stages(result: pb.ProcessResult) -> list[str]:
    """Stages that failed without failing the job (`diarization_failed` warnings)."""
    return [w.code.removesuffix("_failed") for w in result.warnings if w.code.endswith("_failed")]


async def show_job(
    conn: Connection, job_id: str, waiting: Waiting | None, *, wait: bool = False
) -> int:
    """`whospoke job ID`: a summary, or (with --format, -o or --wait) the job's result."""
    async with conn.channel() as channel:
        if waiting is not None and wait:
            return await wait_for(channel, conn, job_id, waiting)
        try:
            job: jpb.Job = await jpb_grpc.JobsStub(channel).GetJob(
                jpb.GetJobRequest(job_id=job_id), timeout=CALL_SECONDS, metadata=conn.metadata
            )
        except grpc.aio.AioRpcError as error:
            raise rpc_error(error, conn, CALL_SECONDS) from error
    if waiting is None:
        print("\n".join(summary_lines(job)))
        return OK
    if job.state == jpb.JOB_STATE_FAILED:
        raise job_failure(job, conn.server)
    if job.state != jpb.JOB_STATE_SUCCEEDED:
        raise not_finished(job)
    written = waiting.written
    uri = Path(job.filename).stem if job.filename else written.uri
    how = Written(written.format, written.output, written.allow_partial, uri)
    console = Console(stderr=True, quiet=waiting.quiet)
    return await write_result(job.result, how, console, failed_stages(job.result))


async def list_jobs(conn: Connection, request: jpb.ListJobsRequest, limit: int, fmt: str) -> int:
    """`whospoke jobs`: pages of `ListJobs`, newest first, until `limit` jobs or the last page."""
    found: list[jpb.Job] = []
    async with conn.channel() as channel:
        stub = jpb_grpc.JobsStub(channel)
        while len(found) < limit:
            request.page_size = min(limit - len(found), PAGE_MAX)
            try:
                page: jpb.ListJobsResponse = await stub.ListJobs(
                    request, timeout=CALL_SECONDS, metadata=conn.metadata
                )
            except grpc.aio.AioRpcError as error:
                raise rpc_error(error, conn, CALL_SECONDS) from error
            found.extend(page.jobs)
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
    found = found[:limit]
    if fmt == "json":
        print(json.dumps([job_to_dict(job) for job in found], indent=2, ensure_ascii=False))
    elif found:
        Console(highlight=False).print(jobs_table(found))
    else:
        print("whospoke: no jobs", file=sys.stderr)
    return OK


async def cancel(conn: Connection, job_id: str) -> int:
    """`whospoke cancel ID`: prints the state the job is left in (`cancelled`, or how it ended)."""
    async with conn.channel() as channel:
        try:
            job: jpb.Job = await jpb_grpc.JobsStub(channel).CancelJob(
                jpb.CancelJobRequest(job_id=job_id), timeout=CALL_SECONDS, metadata=conn.metadata
            )
        except grpc.aio.AioRpcError as error:
            raise rpc_error(error, conn, CALL_SECONDS) from error
    print(state_name(job.state))
    if job.state in ENDED and job.state != jpb.JOB_STATE_CANCELLED:
        print(f"whospoke: job {job_id} had already ended: nothing to cancel", file=sys.stderr)
    return OK
