"""Live diarization: provisional turns against the final result, by latency.

The diarizer engine (segmentation-3.0 + CAM++, in-process, 2 threads) takes each
input in 1 s chunks, as a live stream sends it, with provisional turns on
(`DiarizationConfig.live_turns`); the turns it sends while the audio arrives are
scored against the reference, next to the final result of the same stream (its
exclusive turns, which words are attributed by, and its overlapping turns), and the
final turns are compared with those of the same input diarized without live turns
(what `Process` gives). The turns do not depend on timing, so no pacing is needed;
the per-window cost of tracking is measured alongside. Inputs: `sample.wav`, the
Asterisk conversation and the 5-minute dev meeting.
Usage: python bench/live_diarization_bench.py
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import Input, conversation, meeting, sample
from bench.report import machine, write_section
from diarizer.engine import DiarizerModelConfig, PyannoteEngine, PyannoteSession
from whospoke.common.audio import SAMPLE_RATE
from whospoke.contract.diarization import DiarizationOptions, Turn

LATENCIES = (1.0, 2.0, 3.0, 5.0)


def annotation(turns: tuple[Turn, ...] | list[Turn]) -> Annotation:
    out = Annotation()
    for turn in turns:
        out[Segment(turn.start, turn.end)] = turn.speaker
    return out


def der(reference: Annotation, hypothesis: Annotation, duration: float) -> float:
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    return float(metric(reference, hypothesis, uem=Timeline([Segment(0, duration)])))


def stream(
    engine: PyannoteEngine, item: Input, latency: float, offline: tuple[Turn, ...]
) -> tuple[str, float, float]:
    """DER cells of one live stream: provisional (overlapping, then exclusive), final
    exclusive, final overlapping, and
    whether the final turns are `offline`'s; the seconds spent analysing windows."""
    session = engine.open_session(DiarizationOptions(live_turns=True, live_latency_seconds=latency))
    stop = threading.Event()
    turns: list[Turn] = []
    alone: list[Turn] = []
    busy = 0.0
    for start in range(0, item.audio.size, SAMPLE_RATE):
        session.push(item.audio[start : start + SAMPLE_RATE])
        began = time.perf_counter()
        for _ in session.run(False, stop):
            pass
        busy += time.perf_counter() - began
        turns, alone = _taken(session, turns, alone)
    for _ in session.run(True, stop):
        pass
    turns, alone = _taken(session, turns, alone)
    output = session.finish()
    duration = item.audio.size / SAMPLE_RATE
    live = der(item.reference, annotation(turns), duration)
    live_alone = der(item.reference, annotation(alone), duration)
    exclusive = der(item.reference, annotation(output.exclusive_turns), duration)
    overlapping = der(item.reference, annotation(output.turns), duration)
    speakers = f"{len(annotation(turns).labels())} / {len(output.speakers)}"
    same = "yes" if output.turns == offline else "no"
    cells = (
        f"{100 * live:.1f} % | {100 * live_alone:.1f} % | {100 * exclusive:.1f} % | "
        f"{100 * overlapping:.1f} % | {same} "
        f"| {speakers}"
    )
    return cells, live - overlapping, busy / duration


def _taken(
    session: PyannoteSession, turns: list[Turn], alone: list[Turn]
) -> tuple[list[Turn], list[Turn]]:
    live = session.live_turns()
    return turns + list(live.turns), alone + list(live.exclusive_turns)


def offline_turns(engine: PyannoteEngine, item: Input) -> tuple[Turn, ...]:
    """The input's turns without live turns, as `Process` streams it to the diarizer."""
    session = engine.open_session(DiarizationOptions())
    stop = threading.Event()
    for start in range(0, item.audio.size, SAMPLE_RATE):
        session.push(item.audio[start : start + SAMPLE_RATE])
        for _ in session.run(False, stop):
            pass
    for _ in session.run(True, stop):
        pass
    return session.finish().turns


def main() -> None:
    engine = PyannoteEngine(DiarizerModelConfig(device="cpu", threads=2))
    engine.load()
    rows = []
    for item in (sample(), conversation(), meeting(5)):
        offline = offline_turns(engine, item)
        for latency in LATENCIES:
            cells, gap, load = stream(engine, item, latency, offline)
            rows.append(
                f"| {item.name} | {latency:g} | {cells} | {100 * gap:+.1f} pt | {load:.3f} |"
            )
            print(rows[-1], flush=True)
    lines = [
        "Command: `python bench/live_diarization_bench.py`.",
        f"Machine: {machine()}; torch threads 2.",
        "Each input streamed in 1 s chunks with provisional turns on; DER collar 0, overlap "
        "scored. Provisional: the turns sent while the audio arrived (overlapping speech "
        "included), and their exclusive form (one speaker at a time, which words are "
        "attributed by); final exclusive / overlapping: the same stream's result; same as "
        "offline: its final "
        "turns are those of the input diarized without live turns (as `Process` does). "
        "Analysis load: seconds spent analysing windows per second of audio, tracking included.",
        "",
        "| input | latency (s) | provisional DER | provisional exclusive DER "
        "| final exclusive DER | final DER | same as offline | speakers provisional / final "
        "| provisional - final | analysis load |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    write_section("Live diarization", "\n".join(lines))


if __name__ == "__main__":
    main()
