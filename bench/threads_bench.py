"""CPU sharing: how to split the cores between the transcriber and the diarizer.

When both backends share the CPU (`whospoke serve` on one machine), each model's
thread count decides how they contend. For each split (transcriber threads +
diarizer threads) the three services start afresh and `Process` runs on the
5-minute dev meeting; reported: `Process` wall time, each stage's time, and the
ratio to the best split. Measured as ratios in one run on a quiet machine.

Usage: .venv/bin/python bench/threads_bench.py [--splits 1+1 2+1 1+2 2+2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import meeting
from bench.report import machine, write_section
from whospoke.common.audio import wav_bytes
from whospoke.common.procs import ServiceProcess
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc


async def process_once(transcriber: int, diarizer: int, audio: bytes) -> pb.ProcessResult:
    """Start the three services with these thread counts, run one `Process`, stop them."""
    started = [
        ServiceProcess.start("transcriber", ["--cpu-threads", str(transcriber)]),
        ServiceProcess.start("diarizer", ["--threads", str(diarizer)]),
    ]
    backends = ["--transcriber", started[0].address, "--diarizer", started[1].address]
    started.append(ServiceProcess.start("orchestrator", backends))
    try:
        await asyncio.gather(*(s.wait_serving(within=600) for s in started))
        async with started[2].channel() as channel:
            stub = pb_grpc.OrchestratorStub(channel)
            request = pb.ProcessRequest(audio=audio)
            async for event in stub.Process(request, timeout=3600):
                if event.WhichOneof("event") == "result":
                    return event.result
    finally:
        for s in reversed(started):
            s.stop()
    raise RuntimeError("no result")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--splits", nargs="+", default=["1+1", "2+1", "1+2", "2+2"])
    args = parser.parse_args()
    source = meeting(5)
    audio = wav_bytes(source.audio)
    measured = []
    for split in args.splits:
        transcriber, diarizer = (int(x) for x in split.split("+"))
        result = asyncio.run(process_once(transcriber, diarizer, audio))
        t = result.timings
        measured.append((split, t.total_seconds, t.transcription_seconds, t.diarization_seconds))
        print(split, measured[-1], flush=True)
    best = min(total for _, total, _, _ in measured)
    lines = [
        "Command: `python bench/threads_bench.py`.",
        f"Machine: {machine()} (both backends on the same cores, as `whospoke serve` runs them).",
        f"Input: the dev meeting, {source.seconds / 60:g} minutes, through `Process`; Whisper "
        "base int8, segmentation-3.0 + CAM++.",
        "",
        "| threads (transcriber + diarizer) | `Process` wall time (s) | transcription (s) "
        "| diarization (s) | against the best |",
        "|---|---|---|---|---|",
        *(
            f"| {split} | {total:.1f} | {tr:.1f} | {di:.1f} | {total / best:.2f} |"
            for split, total, tr, di in measured
        ),
    ]
    write_section("CPU sharing", "\n".join(lines))
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
