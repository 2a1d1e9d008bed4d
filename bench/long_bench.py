"""Long recordings: the diarizer's and the orchestrator's peak memory up to 4 hours.

The three services run as subprocesses (`--threads` per model); the dev meeting,
looped to each length, goes through `Upload` and `Process` with transcription
skipped (the transcriber's memory is bounded by its buffer, and transcribing four
hours on 2 cores takes an hour). After each length the peak RSS (VmHWM) of each
service is read; lengths run shortest first, so each peak covers that length.

Usage: .venv/bin/python bench/long_bench.py [--hours 1 2 4] [--threads 2]
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
from bench.orchestrator_bench import Services
from bench.outcome import der
from bench.plots import rss_plot
from bench.report import machine, write_section
from whospoke.common.audio import wav_bytes
from whospoke.v1 import orchestrator_pb2 as pb


async def measure(
    hours: list[float], threads: int
) -> tuple[list[str], list[tuple[float, dict[str, float]]]]:
    """The table's rows, and each length's (minutes, peak RSS of the diarizer and the
    orchestrator) for the plot."""
    services = Services(threads)
    rows, points = [], []
    try:
        await services.ready()
        for length in hours:
            source = meeting(length * 60)
            options = pb.ProcessOptions(skip_transcription=True)
            outcome = await services.process(wav_bytes(source.audio), options)
            peaks = services.peak_rss_mib()
            points.append((length * 60, {k: peaks[k] for k in ("diarizer", "orchestrator")}))
            rows.append(
                f"| {length:g} | {peaks['diarizer']:.0f} | {peaks['orchestrator']:.0f} "
                f"| {outcome.seconds:.0f} | {len(outcome.turns.labels())} "
                f"| {100 * der(source, outcome.turns, 0.0):.1f} % |"
            )
            print(rows[-1], flush=True)
            del source
    finally:
        services.stop()
    return rows, points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rows, points = asyncio.run(measure(sorted(args.hours), args.threads))
    rss_plot(points, Path(__file__).resolve().parent / "figures" / "rss_long.png")
    lines = [
        f"Command: `python bench/long_bench.py` (`make bench-long`; hours: "
        f"{', '.join(f'{h:g}' for h in sorted(args.hours))}).",
        f"Machine: {machine()}; {args.threads} threads per model.",
        "Input: the dev meeting looped to each length, uploaded and diarized through "
        "`Process` (transcription skipped). Peak RSS (VmHWM) of each service after that "
        "length; DER collar 0 against the looped reference.",
        "",
        "| hours | diarizer peak RSS (MiB) | orchestrator peak RSS (MiB) | wall time (s) "
        "| speakers | DER |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "![rss over length](bench/figures/rss_long.png)",
    ]
    write_section("Long recordings", "\n".join(lines))


if __name__ == "__main__":
    main()
