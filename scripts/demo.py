"""`make demo`: start the three services and process pyannote's sample.wav.

Runs the real services as subprocesses on free loopback ports with the embedded
default models (Whisper base; segmentation-3.0 + CAM++), sends the file to the
orchestrator's `Process` RPC exactly as `whospoke process` does (live progress
on stderr), prints the speaker-attributed transcript, and stops the services.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console

from whospoke.cli import client
from whospoke.cli.errors import CliError
from whospoke.cli.main import parser
from whospoke.cli.serve import SERVICES, Ports, start_all, wait_all
from whospoke.evaluation import sample_path


async def demo() -> int:
    console = Console(stderr=True)
    free = {name: 0 for name in SERVICES}
    services = start_all("127.0.0.1", Ports(free, dict(free)), served=["base"], threads=0)
    try:
        with console.status("starting the transcriber, diarizer and orchestrator..."):
            await wait_all(services)
        orchestrator = services[-1]
        console.print(f"[bold]Processing[/] {sample_path()} via {orchestrator.address}")
        args = parser().parse_args(
            ["process", str(sample_path()), "--server", orchestrator.address, "--format", "txt"]
        )
        return await client.process(await asyncio.to_thread(client.prepare, args))
    finally:
        for service in reversed(services):
            service.stop()


def main() -> int:
    """The demo, with the CLI's one-line errors and exit codes."""
    try:
        return asyncio.run(demo())
    except CliError as error:
        print(error.line(), *(f"  {line}" for line in error.details), sep="\n", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
