"""`make demo`: start the three services and process pyannote's sample.wav.

Runs the real services as subprocesses on free loopback ports with the embedded
default models (Whisper base; segmentation-3.0 + CAM++), sends the file to the
orchestrator's `Process` RPC exactly as `whospoke process` does (live progress
on stderr), prints the speaker-attributed transcript, and stops the services.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console

from whospoke.cli import client
from whospoke.cli.main import parser
from whospoke.cli.serve import start_all
from whospoke.evaluation import sample_path


async def main() -> int:
    console = Console(stderr=True)
    options = argparse.Namespace(
        host="127.0.0.1",
        port=0,
        transcriber_port=0,
        diarizer_port=0,
        metrics_port=0,
        model="base",
        threads=0,
    )
    services = start_all(options)
    try:
        with console.status("starting the transcriber, diarizer and orchestrator..."):
            await asyncio.gather(*(s.wait_serving(within=600) for s in services))
        orchestrator = services[-1]
        console.print(f"[bold]Processing[/] {sample_path()} via {orchestrator.address}")
        args = parser().parse_args(
            ["process", str(sample_path()), "--server", orchestrator.address, "--format", "txt"]
        )
        return await client.process(args)
    finally:
        for service in reversed(services):
            service.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
