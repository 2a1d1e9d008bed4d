"""`whospoke live FILE|-`: speaker-attributed transcription of a stream as it is spoken.

A file is decoded here and sent at `--pace` times real time, as a capture
device would send it, which is how live latency is measured; `-` reads raw PCM
from stdin (`arecord`, `ffmpeg -f s16le -`), or with `--encoding encoded` an
encoded stream (`ffmpeg -f ogg -`), sent as it comes. Each final segment is
printed with its speaker and its latency: seconds from sending the end of its
audio to receiving it (for an encoded stream, whose bytes this client cannot
time, from the server's receiving it). Speaker updates rewrite nothing already
printed in text mode (a line says what changed); `--format jsonl` prints every
event as one JSON object, and, last, the result in the shape of
`whospoke process --format json`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

import grpc

from whospoke.cli.checks import check_options, input_file
from whospoke.cli.client import options_from_args, rpc_error
from whospoke.cli.connect import Connection, connection
from whospoke.cli.errors import OK, CliError, UsageError
from whospoke.common.audio import SAMPLE_RATE
from whospoke.common.decode import PcmDecoder
from whospoke.contract.results import result_to_dict
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

MESSAGE_SECONDS = 0.1
"""Audio per message: what a capture device delivers at a time."""
ENCODINGS = {
    "s16le": (pb.PCM_S16LE, 2),
    "f32le": (pb.PCM_F32LE, 4),
    "encoded": (pb.ENCODED_STREAM, 0),
}
"""Each `--encoding`: its `PcmEncoding`, and its bytes per sample (none for a stream)."""
READ_BYTES = 4096
"""An encoded stream from stdin is sent as it comes, at most this much a message."""


@dataclass(frozen=True)
class Live:
    """A checked `whospoke live` command line."""

    path: Path | None
    """None: raw PCM from stdin."""
    config: pb.LiveStreamConfig
    pace: float
    format: str
    timeout: float | None
    connection: Connection


def prepare(args: argparse.Namespace) -> Live:
    """Check the command line before the event loop starts."""
    check_options(argparse.Namespace(**{**vars(args), "format": "json"}))
    if args.pace < 0:
        raise UsageError(f"--pace must be 0 or more, got {args.pace:g}", "0 sends at once.")
    encoding, _ = ENCODINGS[args.encoding]
    stdin = args.file == "-"
    config = pb.LiveStreamConfig(
        options=options_from_args(args),
        encoding=encoding if stdin else pb.PCM_S16LE,
        sample_rate_hz=args.rate if stdin else SAMPLE_RATE,
        channels=args.channels if stdin else 1,
        speaker_latency_seconds=args.speaker_latency,
    )
    path = None if stdin else input_file(args.file)
    return Live(path, config, args.pace, args.format, args.timeout, connection(args))


@dataclass
class Sent:
    """When the audio up to each point was sent (perf_counter), for latencies."""

    seconds: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def at(self, seconds: float) -> float:
        index = bisect_left(self.seconds, seconds - 1e-6)
        return self.times[index] if index < len(self.times) else time.perf_counter()


async def live(job: Live) -> int:
    """Stream the audio, print events as they come; exit 0 once the result is printed."""
    sent, latencies = Sent(), []
    out = Printer(job.format, sys.stdout)
    async with job.connection.channel() as channel:
        stub = pb_grpc.OrchestratorStub(channel)
        call = stub.ProcessStream(
            _requests(job, sent), timeout=job.timeout, metadata=job.connection.metadata
        )
        try:
            async for event in call:
                if event.HasField("live_segment"):
                    end = event.live_segment.segment.end_seconds
                    latencies.append(
                        time.perf_counter() - sent.at(end)
                        if sent.times
                        else event.live_segment.latency_seconds
                    )
                out.event(event, latencies[-1] if latencies else 0.0)
        except grpc.aio.AioRpcError as error:
            raise rpc_error(error, job.connection, job.timeout) from error
    if not out.finished:
        raise CliError("the server ended the stream without a result", "See its log.")
    if latencies:
        p50, p95 = statistics.median(latencies), sorted(latencies)[int(0.95 * (len(latencies) - 1))]
        print(
            f"{len(latencies)} segments; latency p50 {p50:.2f} s, p95 {p95:.2f} s",
            file=sys.stderr,
        )
    return OK


async def _requests(job: Live, sent: Sent) -> AsyncIterator[pb.ProcessStreamRequest]:
    yield pb.ProcessStreamRequest(config=job.config)
    if job.config.encoding == pb.ENCODED_STREAM:
        stdin = cast(io.BufferedReader, sys.stdin.buffer)  # read1: what has come, not a full block
        while data := await asyncio.to_thread(stdin.read1, READ_BYTES):
            yield pb.ProcessStreamRequest(audio=data)
        return
    started = time.perf_counter()
    seconds = 0.0
    rate, channels = job.config.sample_rate_hz, job.config.channels or 1
    width = ENCODINGS["f32le" if job.config.encoding == pb.PCM_F32LE else "s16le"][1]
    frame = width * channels
    blocks = _file_blocks(job.path) if job.path is not None else _stdin_blocks(frame, rate)
    while (block := await asyncio.to_thread(next, blocks, b"")) != b"":
        if job.pace > 0:  # a file: as fast as it would be spoken
            await asyncio.sleep(max(0.0, started + seconds / job.pace - time.perf_counter()))
        seconds += len(block) / frame / rate
        sent.seconds.append(seconds)
        sent.times.append(time.perf_counter())
        yield pb.ProcessStreamRequest(audio=block)


def _file_blocks(path: Path) -> Iterator[bytes]:
    """The file decoded to 16 kHz mono s16le, in `MESSAGE_SECONDS` messages."""
    size = round(MESSAGE_SECONDS * SAMPLE_RATE) * 2
    pending = b""
    for pcm in PcmDecoder(path, field="FILE"):
        pending += pcm
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending


def _stdin_blocks(frame: int, rate: int) -> Iterator[bytes]:
    """Raw PCM from stdin, whole frames, about `MESSAGE_SECONDS` a message."""
    size = round(MESSAGE_SECONDS * rate) * frame
    while data := sys.stdin.buffer.read(size):
        yield data[: len(data) - len(data) % frame]


class Printer:
    """Events as text lines or JSON lines."""

    def __init__(self, fmt: str, out: TextIO) -> None:
        self._jsonl = fmt == "jsonl"
        self._out = out
        self.finished = False

    def event(self, event: pb.ProcessEvent, latency: float) -> None:
        kind = event.WhichOneof("event")
        line = ""
        if kind == "live_segment":
            line = self._segment(event.live_segment, latency)
        elif kind == "speaker_update":
            line = self._update(event.speaker_update)
        elif kind == "warning":
            w = event.warning
            line = self._json({"type": "warning", "code": w.code, "message": w.message})
            if not self._jsonl:
                print(f"whospoke: warning: {w.message}", file=sys.stderr)
                line = ""
        elif kind == "result":
            self.finished = True
            if self._jsonl:
                line = json.dumps(result_to_dict(event.result), ensure_ascii=False)
        if line:
            print(line, file=self._out, flush=True)

    def _segment(self, live: pb.LiveSegment, latency: float) -> str:
        s = live.segment
        if not self._jsonl:
            span = f"[{s.start_seconds:7.2f} → {s.end_seconds:7.2f}]"
            return f"{span} {s.speaker or '?'}: {s.text}  ({latency:.2f} s)"
        return self._json(
            {
                "type": "segment",
                "index": live.index,
                "start": s.start_seconds,
                "end": s.end_seconds,
                "text": s.text,
                "speaker": s.speaker,
                "language": s.language,
                "latency_seconds": round(latency, 3),
                "words": [
                    {
                        "start": w.start_seconds,
                        "end": w.end_seconds,
                        "word": w.text,
                        "speaker": w.speaker,
                    }
                    for w in s.words
                ],
            }
        )

    def _update(self, update: pb.SpeakerUpdate) -> str:
        if not self._jsonl:
            final = " (final)" if update.final else ""
            return f"  segment {update.index} is now {update.speaker or '?'}{final}"
        return self._json(
            {
                "type": "speaker_update",
                "index": update.index,
                "speaker": update.speaker,
                "word_speakers": list(update.word_speakers),
                "final": update.final,
            }
        )

    def _json(self, value: dict[str, Any]) -> str:
        return json.dumps(value, ensure_ascii=False) if self._jsonl else ""
