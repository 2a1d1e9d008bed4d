"""`whospoke process` and `whospoke health`: an Orchestrator client with live progress.

`prepare` checks everything local before the event loop starts (flags, files,
certificates), so that `process` only deals with the server; every failed call
leaves here as a `CliError` carrying its exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console

from whospoke.cli.checks import (
    check_options,
    input_file,
    output_file,
    read_input,
    speaker_warning,
)
from whospoke.cli.connect import Connection, connection
from whospoke.cli.errors import OK, PARTIAL, SERVER_ERROR, CliError, UsageError, from_rpc
from whospoke.cli.progress import ProgressView
from whospoke.contract.renderings import render
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

INLINE_LIMIT = 16 << 20
"""Files up to this size travel inside the `Process` request; larger ones are uploaded."""
UPLOAD_CHUNK = 1 << 20
ProgressWarn = Callable[[str], None]
LACKS = {"diarization": "speakers", "transcription": "text"}
"""What the output is missing when a stage failed."""


@dataclass(frozen=True)
class Job:
    """A checked `whospoke process` command line."""

    path: Path
    size: int
    options: pb.ProcessOptions
    format: str
    output: Path | None
    quiet: bool
    allow_partial: bool
    timeout: float | None
    connection: Connection


def options_from_args(args: argparse.Namespace) -> pb.ProcessOptions:
    options = pb.ProcessOptions(
        language=args.language or "",
        skip_diarization=args.no_diarization,
        skip_transcription=args.no_transcription,
        initial_prompt=args.prompt or "",
        hotwords=args.hotwords or "",
        require_diarization=args.require_diarization,
        multilingual=args.multilingual,
        model=args.model or "",
        return_embeddings=args.embeddings,
    )
    known = [name.strip() for name in (args.known_speakers or "").split(",") if name.strip()]
    if known == ["all"]:
        options.all_known_speakers = True
    else:
        options.known_speakers.extend(known)
    if args.speakers is not None:
        options.num_speakers = args.speakers
    if args.min_speakers is not None:
        options.min_speakers = args.min_speakers
    if args.max_speakers is not None:
        options.max_speakers = args.max_speakers
    if args.temperature is not None:
        options.temperature = args.temperature
    return options


def prepare(args: argparse.Namespace) -> Job:
    """Check the command line and the files (blocking; runs before the event loop)."""
    check_options(args)
    conn = connection(args)
    path = input_file(args.file)
    output = output_file(args.output)
    warning = speaker_warning(path, args.speakers, args.min_speakers)
    if warning:
        print(warning, file=sys.stderr)
    return Job(
        path=path,
        size=path.stat().st_size,
        options=options_from_args(args),
        format=args.format,
        output=output,
        quiet=args.quiet,
        allow_partial=args.allow_partial,
        timeout=args.timeout,
        connection=conn,
    )


async def upload(
    stub: pb_grpc.OrchestratorAsyncStub, path: Path, metadata: tuple[tuple[str, str], ...]
) -> str:
    async def chunks() -> AsyncIterator[pb.UploadChunk]:
        with path.open("rb") as file:
            first = True
            while data := await asyncio.to_thread(file.read, UPLOAD_CHUNK):
                yield pb.UploadChunk(data=data, filename=path.name if first else "")
                first = False

    response: pb.UploadResponse = await stub.Upload(chunks(), metadata=metadata)
    return response.upload_id


def rpc_error(error: grpc.aio.AioRpcError, conn: Connection, timeout: float | None) -> CliError:
    return from_rpc(error, conn.server, tls=conn.tls, timeout=timeout, token=bool(conn.token))


async def process(job: Job) -> int:
    """Send the file, show progress, write the result; the exit code says how it went."""
    console = Console(stderr=True, quiet=job.quiet)
    failed: list[str] = []
    try:
        result = await _call(job, console, failed)
    except grpc.aio.AioRpcError as error:
        raise rpc_error(error, job.connection, job.timeout) from error
    written = Written(job.format, job.output, job.allow_partial, uri=job.path.stem)
    return await write_result(result, written, console, failed)


@dataclass(frozen=True)
class Written:
    """Where and how a result is written: `process`, `submit --wait` and `job`."""

    format: str
    output: Path | None
    allow_partial: bool
    uri: str = "audio"
    """The recording's name in RTTM output."""


async def write_result(
    result: pb.ProcessResult, how: Written, console: Console, failed: list[str]
) -> int:
    """Render and write `result`; exit 3 (PARTIAL) when a stage in `failed` is missing."""
    text = render(result, how.format, uri=how.uri)
    if how.output is not None:
        try:
            await asyncio.to_thread(how.output.write_text, text)
        except OSError as error:
            raise UsageError(
                f"cannot write --output {how.output} ({error.strerror})", "Check the path."
            ) from None
        console.print(f"wrote {how.output}", markup=False, highlight=False)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if failed and not how.allow_partial:
        print(
            f"whospoke: partial result: {' and '.join(failed)} failed, so the output has no "
            f"{' and no '.join(LACKS.get(stage, stage) for stage in failed)} (exit 3). "
            "Pass --allow-partial to accept partial results (exit 0), "
            "or --require-diarization to fail instead.",
            file=sys.stderr,
        )
        return PARTIAL
    return OK


async def _call(job: Job, console: Console, failed: list[str]) -> pb.ProcessResult:
    """The `Process` stream; stages that failed (`<stage>_failed` warnings) go to `failed`."""
    conn = job.connection
    async with conn.channel() as ch:
        stub = pb_grpc.OrchestratorStub(ch)
        request = pb.ProcessRequest(options=job.options)
        uploaded = ""
        if job.size > INLINE_LIMIT:
            with console.status(f"uploading {job.path.name}..."):
                uploaded = await upload(stub, job.path, conn.metadata)
            request.upload_id = uploaded
        else:
            request.audio = await asyncio.to_thread(read_input, job.path)
        result: pb.ProcessResult | None = None
        try:
            with ProgressView(console, warner(console, job.quiet)) as view:
                call = stub.Process(request, timeout=job.timeout, metadata=conn.metadata)
                async for event in call:
                    view.show(event)
                    if event.HasField("warning") and event.warning.code.endswith("_failed"):
                        failed.append(event.warning.code.removesuffix("_failed"))
                    if event.HasField("result"):
                        result = event.result
        finally:
            if uploaded:  # best effort: the server deletes it anyway when its time-to-live ends
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await stub.DeleteUpload(
                        pb.DeleteUploadRequest(upload_id=uploaded),
                        metadata=conn.metadata,
                        timeout=10,
                    )
    if result is None:
        raise CliError(
            "the server ended the stream without a result", "See the orchestrator's log."
        )
    return result


def warner(console: Console, quiet: bool) -> ProgressWarn:
    """Warnings always show: above the progress rows, or as plain lines with --quiet."""
    if quiet:
        return lambda line: print(line, file=sys.stderr)
    return lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)


def backend_line(backend: pb.BackendStatus) -> str:
    """What a backend runs: its models, device and (on a GPU) how busy and full it is now."""
    parts = []
    if backend.models:
        parts.append("models " + ", ".join(backend.models))
    if backend.device:
        parts.append("on " + backend.device)
    if backend.HasField("gpu"):
        gpu, gib = backend.gpu, 1 << 30
        parts.append(
            f"{gpu.gpu_name or 'GPU'} {gpu.utilization_percent_max:.0f} % busy, "
            f"{gpu.memory_used_bytes_max / gib:.1f} of {gpu.memory_total_bytes / gib:.1f} GiB used"
        )
    return "; ".join(parts)


async def health(conn: Connection, seconds: float) -> int:
    """Health of the orchestrator and, through its status, of its backends (exit 0 or 1)."""
    console = Console(highlight=False)
    async with conn.channel() as ch:
        try:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=seconds, metadata=conn.metadata
            )
            status = await pb_grpc.OrchestratorStub(ch).GetStatus(
                pb.GetStatusRequest(), timeout=seconds, metadata=conn.metadata
            )
        except grpc.aio.AioRpcError as error:
            raise rpc_error(error, conn, seconds) from error
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    ok = serving and all(b.serving for b in status.backends)
    console.print(f"orchestrator {conn.server}: {'SERVING' if serving else 'NOT_SERVING'}")
    for b in status.backends:
        state = "SERVING" if b.serving else f"NOT SERVING ({b.detail})"
        pool = f" [{b.pool}]" if b.pool else ""
        console.print(f"  {b.name}{pool} {b.address}: {state}", markup=False)
        if b.models or b.device:
            console.print(f"    {backend_line(b)}", markup=False)
        if len(b.replicas) > 1 or any(not r.serving for r in b.replicas):
            for r in b.replicas:
                replica = "SERVING" if r.serving else f"NOT SERVING ({r.detail})"
                console.print(f"    replica {r.address}: {replica}", markup=False)
    console.print(
        f"  jobs: {status.jobs_running} running, {status.jobs_queued} queued "
        f"(limits {status.max_concurrent_jobs} + {status.max_queued_jobs})"
    )
    return OK if ok else SERVER_ERROR
