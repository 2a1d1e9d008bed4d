"""`make demo`: start the transcriber service and transcribe pyannote's sample.wav.

Runs the real service as a subprocess on a free loopback port with the embedded
default model, streams the file in 1 s chunks like any client would, and prints
each segment as it arrives.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console

from whospoke.common.audio import decode_audio, iter_chunks
from whospoke.common.procs import ServiceProcess
from whospoke.evaluation import sample_path
from whospoke.v1 import transcriber_pb2 as pb
from whospoke.v1 import transcriber_pb2_grpc as pb_grpc


async def main() -> None:
    console = Console()
    audio = decode_audio(sample_path())
    with console.status("starting whospoke-transcriber (Whisper base, embedded)..."):
        service = ServiceProcess.start("transcriber", [])
        await service.wait_serving(within=300)
    try:
        async with service.channel() as channel:
            stub = pb_grpc.TranscriberStub(channel)

            async def requests() -> AsyncIterator[pb.TranscribeRequest]:
                yield pb.TranscribeRequest(config=pb.TranscriptionConfig())
                for chunk in iter_chunks(audio, 1.0):
                    yield pb.TranscribeRequest(audio=chunk)

            console.print(f"[bold]Transcribing[/] {sample_path()}")
            async for response in stub.Transcribe(requests(), timeout=600):
                kind = response.WhichOneof("response")
                if kind == "segment":
                    s = response.segment
                    console.print(
                        f"[cyan][{s.start_seconds:6.2f} → {s.end_seconds:6.2f}][/]{s.text}"
                    )
                elif kind == "summary":
                    m = response.summary
                    console.print(
                        f"[green]{m.segment_count} segments[/], language {m.language} "
                        f"({m.language_probability:.2f}), {m.audio_duration_seconds:.1f} s of "
                        f"audio in {m.processing_seconds:.1f} s with Whisper {m.model}"
                    )
    finally:
        service.stop()


if __name__ == "__main__":
    asyncio.run(main())
