"""Transcriber benchmark: against whole-file faster-whisper, gRPC overhead, first segment.

In one run, on the same audio, with the same model, threads, VAD and word timestamps:
- the service over gRPC (a `whospoke-transcriber` subprocess, audio streamed at full speed),
- the same engine in-process (no gRPC),
- faster-whisper transcribing the whole file in-process (`vad_filter=True`,
  `word_timestamps=True`), the usual way.
Runs alternate between the three so that machine noise hits them alike; medians are
reported. Two inputs: Asterisk English prompts (clean speech, long pauses) and the
5-minute dev meeting (far-field meeting speech, short pauses).

Usage: .venv/bin/python bench/transcriber_bench.py [--quick] [--runs N] [--model base]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import meeting
from bench.report import machine, write_section
from transcriber.config import ModelConfig
from transcriber.engine import FasterWhisperEngine
from whospoke.common.audio import SAMPLE_RATE, Samples, iter_chunks
from whospoke.common.procs import ServiceProcess
from whospoke.contract.transcription import Segment, TranscriptionOptions
from whospoke.evaluation import Recording, asterisk_recording, word_error_rate
from whospoke.v1 import transcriber_pb2 as pb
from whospoke.v1 import transcriber_pb2_grpc as pb_grpc


@dataclass
class Run:
    total: float
    first_segment: float
    text: str


def long_input(min_seconds: float) -> Recording:
    """Asterisk English prompts, one after another, until `min_seconds` are reached."""
    count = 16
    while True:
        recording = asterisk_recording("en", count=count)
        if recording.audio.size >= min_seconds * SAMPLE_RATE or count > 400:
            return recording
        count *= 2


async def over_grpc(service: ServiceProcess, audio: Samples) -> Run:
    async with service.channel() as channel:
        stub = pb_grpc.TranscriberStub(channel)

        async def requests() -> AsyncIterator[pb.TranscribeRequest]:
            yield pb.TranscribeRequest(config=pb.TranscriptionConfig(language="en"))
            for chunk in iter_chunks(audio, 1.0):
                yield pb.TranscribeRequest(audio=chunk)

        start = time.perf_counter()
        first = 0.0
        texts = []
        async for response in stub.Transcribe(requests(), timeout=3600):
            if response.HasField("segment"):
                first = first or time.perf_counter() - start
                texts.append(response.segment.text)
        return Run(time.perf_counter() - start, first, "".join(texts))


def in_process(engine: FasterWhisperEngine, audio: Samples) -> Run:
    start = time.perf_counter()
    session = engine.open_session(TranscriptionOptions(language="en"))
    session.push(audio)
    stop = threading.Event()
    first = 0.0
    texts = []
    for final in (False, True):
        for item in session.run(final, stop):
            if isinstance(item, Segment):
                first = first or time.perf_counter() - start
                texts.append(item.text)
    return Run(time.perf_counter() - start, first, "".join(texts))


def whole_file(engine: FasterWhisperEngine, audio: Samples) -> Run:
    start = time.perf_counter()
    segments, _ = engine.model.transcribe(
        audio, language="en", vad_filter=True, word_timestamps=True
    )
    first = 0.0
    texts = []
    for segment in segments:
        first = first or time.perf_counter() - start
        texts.append(segment.text)
    return Run(time.perf_counter() - start, first, "".join(texts))


@dataclass
class Source:
    name: str
    audio: Samples
    transcript: str
    description: str

    @property
    def seconds(self) -> float:
        return self.audio.size / SAMPLE_RATE


def sources(quick: bool) -> list[Source]:
    recording = long_input(60 if quick else 300)
    asterisk = Source(
        "Asterisk en",
        recording.audio,
        recording.transcript,
        f"{len(recording.prompts)} Debian Asterisk English prompts joined by 1.5 s of silence",
    )
    if quick:
        return [asterisk]
    dev = meeting(5)
    return [asterisk, Source("dev meeting", dev.audio, "", "the ten dev clips joined, 5 min")]


async def measure(
    service: ServiceProcess, engine: FasterWhisperEngine, audio: Samples, runs: int
) -> dict[str, list[Run]]:
    """Each path `runs` times, in rotating order."""
    results: dict[str, list[Run]] = {"grpc": [], "engine": [], "whole": []}
    for index in range(runs):
        order = ["grpc", "engine", "whole"]
        order = order[index % 3 :] + order[: index % 3]
        for name in order:
            if name == "grpc":
                run = await over_grpc(service, audio)
            elif name == "engine":
                run = await asyncio.to_thread(in_process, engine, audio)
            else:
                run = await asyncio.to_thread(whole_file, engine, audio)
            results[name].append(run)
            print(f"run {index + 1} {name}: {run.total:.1f} s", flush=True)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="60 s input, one run each")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="base")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    inputs = sources(args.quick)
    # In process: whole-file faster-whisper on it is the baseline; the service (below) runs
    # as deployed, its model in a child process.
    engine = FasterWhisperEngine(
        ModelConfig(model=args.model, cpu_threads=args.threads, model_process="off")
    )
    engine.load()
    service = ServiceProcess.start(
        "transcriber", ["--model", args.model, "--cpu-threads", str(args.threads)]
    )
    found = []
    try:
        await service.wait_serving(within=300)
        await over_grpc(service, inputs[0].audio[: 5 * SAMPLE_RATE])  # warm-up
        for source in inputs:
            print(f"input: {source.name}, {source.seconds:.0f} s", flush=True)
            found.append((source, await measure(service, engine, source.audio, runs)))
    finally:
        service.stop()
    write_section("Transcriber", report(args, runs, found), args.quick)
    print("BENCHMARKS.md updated", flush=True)


ROWS = [
    ("whospoke-transcriber over gRPC (streamed at full speed)", "grpc"),
    ("the same engine in-process", "engine"),
    ("faster-whisper whole file in-process (`vad_filter`, `word_timestamps`)", "whole"),
]


def report(
    args: argparse.Namespace, runs: int, found: list[tuple[Source, dict[str, list[Run]]]]
) -> str:
    command = "make bench" if not args.quick else "python bench/transcriber_bench.py --quick"
    lines = [
        f"Command: `{command}` (`bench/transcriber_bench.py`), {runs} run(s) each, medians.",
        f"Machine: {machine()}.",
        f"Model: Whisper {args.model}, int8 on CPU, {args.threads} threads, beam 5, language "
        "en, VAD and word timestamps on every path. The service decodes a file's pieces in "
        "batches (`--batch-size`, 4 on CPU).",
    ]
    ratios = []
    for source, results in found:
        med = {k: statistics.median(r.total for r in v) for k, v in results.items()}
        first = {k: statistics.median(r.first_segment for r in v) for k, v in results.items()}
        lines += [
            "",
            f"**{source.name}** ({source.seconds:.0f} s: {source.description})",
            "",
            "| path | wall time (s) | range over runs (s) | real-time factor "
            "| first segment after (s) | WER |",
            "|---|---|---|---|---|---|",
        ]
        for label, key in ROWS:
            totals = [r.total for r in results[key]]
            wer = (
                f"{word_error_rate(source.transcript, results[key][-1].text):.3f}"
                if source.transcript
                else "-"
            )
            lines.append(
                f"| {label} | {med[key]:.1f} | {min(totals):.1f}-{max(totals):.1f} | "
                f"{med[key] / source.seconds:.3f} | {first[key]:.1f} | {wer} |"
            )
        overhead = (med["grpc"] / med["engine"] - 1) * 100
        ratio = med["grpc"] / med["whole"]
        ratios.append(
            f"- {source.name}: service / whole-file faster-whisper **{ratio:.2f}** "
            f"times the wall time (target ≤ 0.7); gRPC overhead {overhead:+.1f} %; first segment "
            f"over gRPC after {first['grpc']:.1f} s ({first['grpc'] / med['grpc'] * 100:.1f} % "
            f"of the total), whole-file after {first['whole']:.1f} s."
        )
    lines += [
        "",
        *ratios,
        "- The runs of one path spread by several percent on this shared machine, so a gRPC "
        "overhead near zero, negative included, means no measurable overhead.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    asyncio.run(main())
