"""`whospoke process` and `whospoke health`: an Orchestrator client with live progress."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from whospoke.cli.formats import render
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

INLINE_LIMIT = 16 << 20
"""Files up to this size travel inside the `Process` request; larger ones are uploaded."""
UPLOAD_CHUNK = 1 << 20
STAGE_NAMES = {
    pb.STAGE_DECODING: "decoding",
    pb.STAGE_MERGING: "merging",
}


def credentials(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """Call metadata: the bearer token from --token or $WHOSPOKE_TOKEN, if any."""
    token = args.token or os.environ.get("WHOSPOKE_TOKEN", "")
    return (("authorization", f"Bearer {token}"),) if token else ()


def channel(address: str) -> grpc.aio.Channel:
    options = [("grpc.max_receive_message_length", 256 << 20)]
    options.append(("grpc.max_send_message_length", 256 << 20))
    return grpc.aio.insecure_channel(address, options=options)


def options_from_args(args: argparse.Namespace) -> pb.ProcessOptions:
    options = pb.ProcessOptions(
        language=args.language or "",
        skip_diarization=args.no_diarization,
        skip_transcription=args.no_transcription,
        initial_prompt=args.prompt or "",
        hotwords=args.hotwords or "",
    )
    if args.speakers is not None:
        options.num_speakers = args.speakers
    if args.min_speakers is not None:
        options.min_speakers = args.min_speakers
    if args.max_speakers is not None:
        options.max_speakers = args.max_speakers
    return options


async def upload(
    stub: pb_grpc.OrchestratorAsyncStub, path: Path, metadata: tuple[tuple[str, str], ...]
) -> str:
    async def chunks() -> AsyncIterator[pb.UploadChunk]:
        with path.open("rb") as file:
            first = True
            while data := file.read(UPLOAD_CHUNK):
                yield pb.UploadChunk(data=data, filename=path.name if first else "")
                first = False

    response: pb.UploadResponse = await stub.Upload(chunks(), metadata=metadata)
    return response.upload_id


class ProgressView:
    """A rich progress display on stderr driven by `ProcessEvent`s."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f} %"),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressView:
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def _task(self, name: str) -> TaskID:
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(name, total=100, note="")
        return self._tasks[name]

    def show(self, event: pb.ProcessEvent) -> None:
        kind = event.WhichOneof("event")
        if kind == "queued":
            self._progress.update(self._task("queued"), note=f"position {event.queued.position}")
        elif kind == "stage":
            stage = event.stage.stage
            if stage in (pb.STAGE_TRANSCRIBING, pb.STAGE_DIARIZING):
                self._task("transcribing" if stage == pb.STAGE_TRANSCRIBING else "diarizing")
            elif stage in STAGE_NAMES:
                for task in self._tasks.values():
                    self._progress.update(task, completed=100)
                self._task(STAGE_NAMES[stage])
        elif kind == "progress":
            p = event.progress
            if "transcribing" in self._tasks:
                self._progress.update(
                    self._tasks["transcribing"],
                    completed=p.transcription_percent,
                    note=f"{p.segment_count} segments",
                )
            if "diarizing" in self._tasks:
                self._progress.update(self._tasks["diarizing"], completed=p.diarization_percent)
        elif kind == "warning":
            self._progress.console.print(f"[yellow]warning:[/] {event.warning.message}")
        elif kind == "result":
            for task in self._tasks.values():
                self._progress.update(task, completed=100)


async def process(args: argparse.Namespace) -> int:
    path = Path(args.file)
    console = Console(stderr=True, quiet=args.quiet)
    async with channel(args.server) as ch:
        stub = pb_grpc.OrchestratorStub(ch)
        request = pb.ProcessRequest(options=options_from_args(args))
        uploaded = ""
        size = await asyncio.to_thread(lambda: path.stat().st_size)
        if size > INLINE_LIMIT:
            with console.status(f"uploading {path.name}..."):
                uploaded = await upload(stub, path, credentials(args))
            request.upload_id = uploaded
        else:
            request.audio = await asyncio.to_thread(path.read_bytes)
        result: pb.ProcessResult | None = None
        try:
            with ProgressView(console) as view:
                call = stub.Process(request, timeout=args.timeout, metadata=credentials(args))
                async for event in call:
                    view.show(event)
                    if event.HasField("result"):
                        result = event.result
        finally:
            if uploaded:
                await stub.DeleteUpload(
                    pb.DeleteUploadRequest(upload_id=uploaded), metadata=credentials(args)
                )
    if result is None:
        console.print("[red]error:[/] the server ended the stream without a result")
        return 1
    text = render(result, args.format, uri=path.stem)
    if args.output:
        await asyncio.to_thread(Path(args.output).write_text, text)
        console.print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


async def health(args: argparse.Namespace) -> int:
    """Health of the orchestrator and, through its status, of its backends."""
    console = Console()
    async with channel(args.server) as ch:
        try:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=args.timeout
            )
            status = await pb_grpc.OrchestratorStub(ch).GetStatus(
                pb.GetStatusRequest(), timeout=args.timeout, metadata=credentials(args)
            )
        except grpc.aio.AioRpcError as error:
            console.print(
                f"[red]orchestrator {args.server}: {error.code().name}[/] {error.details()}"
            )
            return 1
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    ok = serving and all(b.serving for b in status.backends)
    console.print(f"orchestrator {args.server}: {'SERVING' if serving else 'NOT_SERVING'}")
    for b in status.backends:
        state = "SERVING" if b.serving else f"NOT SERVING ({b.detail})"
        console.print(f"  {b.name} {b.address}: {state}")
    console.print(
        f"  jobs: {status.jobs_running} running, {status.jobs_queued} queued "
        f"(limits {status.max_concurrent_jobs} + {status.max_queued_jobs})"
    )
    return 0 if ok else 1
