"""CPU sharing: how to split the cores between the transcriber and the diarizer.

When both backends share the CPU (`whospoke serve` on one machine), each model's
thread count and the diarizer's niceness decide how they contend. For each setting
(`T+D`: transcriber and diarizer threads; `/N`: the diarizer at niceness N) the three
services start afresh, one warm-up `Process` runs on sample.wav, then `Process` runs on
the 5-minute dev meeting and on the dev clips with their pauses shortened; reported:
`Process` wall time, each stage's time, the first segment's share of the wall time, and
the ratio to the best setting. Measured as ratios in one run on a quiet machine.

Usage: .venv/bin/python bench/threads_bench.py [--splits 1+1 2+2 1+1/10 2+2/10 2+2/19]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import Input, meeting, sample, short_pauses
from bench.report import machine, write_section
from whospoke.common.audio import wav_bytes
from whospoke.common.procs import ServiceProcess
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

SPLITS = ["1+1", "2+1", "1+2", "2+2", "1+1/10", "2+2/10", "2+2/19"]


@dataclass(frozen=True)
class Run:
    """One `Process` of one input under one setting."""

    setting: str
    source: str
    total: float
    first_segment: float
    transcription: float
    diarization: float


async def process(stub: Any, audio: bytes) -> tuple[pb.ProcessResult, float]:
    """One `Process`: its result and when its first segment came (s after the call)."""
    start, first = time.perf_counter(), 0.0
    async for event in stub.Process(pb.ProcessRequest(audio=audio), timeout=3600):
        kind = event.WhichOneof("event")
        if kind == "segment" and not first:
            first = time.perf_counter() - start
        elif kind == "result":
            return event.result, first
    raise RuntimeError("no result")


async def measure(setting: str, sources: list[Input]) -> list[Run]:
    """Start the three services under `setting`, warm them up, run each source, stop them."""
    threads, _, nice = setting.partition("/")
    transcriber, diarizer = threads.split("+")
    started = [
        ServiceProcess.start("transcriber", ["--cpu-threads", transcriber]),
        ServiceProcess.start("diarizer", ["--threads", diarizer, "--nice", nice or "0"]),
    ]
    backends = ["--transcriber", started[0].address, "--diarizer", started[1].address]
    started.append(ServiceProcess.start("orchestrator", backends))
    runs = []
    try:
        await asyncio.gather(*(s.wait_serving(within=600) for s in started))
        async with started[2].channel() as channel:
            stub = pb_grpc.OrchestratorStub(channel)
            await process(stub, wav_bytes(sample().audio))
            for source in sources:
                result, first = await process(stub, wav_bytes(source.audio))
                t = result.timings
                first -= t.queued_seconds
                runs.append(
                    Run(
                        setting,
                        source.name,
                        t.total_seconds,
                        first,
                        t.transcription_seconds,
                        t.diarization_seconds,
                    )
                )
                print(runs[-1], flush=True)
    finally:
        for s in reversed(started):
            s.stop()
    return runs


def table(runs: list[Run]) -> list[str]:
    best = {r.source: min(x.total for x in runs if x.source == r.source) for r in runs}
    return [
        "| input | threads (transcriber + diarizer) | diarizer niceness | `Process` wall time (s) "
        "| first segment (s) | share | transcription (s) | diarization (s) | against the best |",
        "|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {r.source} | {r.setting.partition('/')[0]} | {r.setting.partition('/')[2] or 0} "
            f"| {r.total:.1f} | {r.first_segment:.2f} | {100 * r.first_segment / r.total:.1f} % "
            f"| {r.transcription:.1f} | {r.diarization:.1f} | {r.total / best[r.source]:.2f} |"
            for r in sorted(runs, key=lambda r: r.source)
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--splits", nargs="+", default=SPLITS)
    args = parser.parse_args()
    sources = [meeting(5), short_pauses()]
    runs = [run for split in args.splits for run in asyncio.run(measure(split, sources))]
    lines = [
        "Command: `python bench/threads_bench.py`.",
        f"Machine: {machine()} (both backends on the same cores, as `whospoke serve` runs them).",
        "Inputs: the dev meeting (5 minutes) and the dev clips with pauses cut to 0.4 s, through "
        "`Process` after a warm-up call; Whisper base int8, segmentation-3.0 + CAM++. The first "
        "segment is counted from the job's start.",
        "",
        *table(runs),
    ]
    write_section("CPU sharing", "\n".join(lines))
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
