"""`whospoke serve`: the three services on loopback, with the embedded default models."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from rich.console import Console

from whospoke.common.procs import ServiceProcess

STARTUP_SECONDS = 600.0


def start_all(args: argparse.Namespace) -> list[ServiceProcess]:
    """Start transcriber, diarizer and orchestrator (backends first) as subprocesses."""
    host = ["--host", args.host]
    transcriber = ServiceProcess.start(
        "transcriber",
        [*host, "--model", args.model, *_threads("--cpu-threads", args.threads)],
        args.transcriber_port,
    )
    diarizer = ServiceProcess.start(
        "diarizer", [*host, *_threads("--threads", args.threads)], args.diarizer_port
    )
    orchestrator = ServiceProcess.start(
        "orchestrator",
        [
            *host,
            "--transcriber",
            f"127.0.0.1:{transcriber.port}",
            "--diarizer",
            f"127.0.0.1:{diarizer.port}",
        ],
        args.port,
        metrics_port=args.metrics_port,
    )
    return [transcriber, diarizer, orchestrator]


def _threads(flag: str, threads: int) -> list[str]:
    return [flag, str(threads)] if threads else []


async def serve(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    services = start_all(args)
    try:
        with console.status("loading models (Whisper and pyannote)..."):
            await asyncio.gather(*(s.wait_serving(STARTUP_SECONDS) for s in services))
        for s in services:
            console.print(f"{s.name:<13} 127.0.0.1:{s.port}  log {s.log_path}")
        console.print(
            f"[bold green]ready[/]: whospoke process FILE --server 127.0.0.1:{services[-1].port}"
            "  (Ctrl-C stops)"
        )
        await _until_signal(services)
    finally:
        for s in reversed(services):
            s.stop()
    return 0


async def _until_signal(services: list[ServiceProcess]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        dead = [s for s in services if s.process.poll() is not None]
        if dead:
            raise RuntimeError(f"{dead[0].name} exited:\n{dead[0].log()[-4000:]}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
