"""Live transcription: when a segment's words go out, waiting for pauses or sent early.

One live transcriber session in-process (Whisper base, int8, 1 thread, as `whospoke
serve` gives the transcriber on 2 cores) takes each input in 100 ms chunks, as
`ProcessStream` passes them on. A segment's latency is the time from the arrival of
the end of its audio to its emission, on two clocks:
- this CPU: the audio arrives in real time and every decode takes the time it takes
  here (a backlog carries over to the next chunk);
- decode time excluded: the latency the policy itself adds (pause detection, `hold`,
  waiting for enough unsent speech), what a device that decodes in a few tens of
  milliseconds would see, as a GPU does. No GPU was available to measure it on one.
Policies: waiting for pauses (utterances split at 6 s; what a CPU stream uses), and
early words (transcriber/early.py) forced on whatever decodes cost. WER against the
reference transcript; decodes: Whisper passes per second of audio.
Usage: python bench/live_words_bench.py
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faster_whisper import WhisperModel
from pyannote.core import Annotation

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import Input, sample
from bench.report import machine, write_section
from transcriber.config import ModelConfig
from transcriber.early import EarlyTimings
from transcriber.engine import FasterWhisperEngine
from transcriber.session import WhisperSession
from whospoke.common.audio import SAMPLE_RATE
from whospoke.contract.transcription import Segment, TranscriptionOptions
from whospoke.evaluation import asterisk_recording, word_error_rate

CHUNK = int(0.1 * SAMPLE_RATE)
POLICIES = {"pauses": None, "early words": EarlyTimings(max_decode=1e9)}


@dataclass(frozen=True)
class Run:
    latencies: list[float]
    text: str
    decodes: int
    lag: float
    """Seconds from the end of the audio to the last segment."""


def stream(model: WhisperModel, item: Input, timings: EarlyTimings | None, cpu: bool) -> Run:
    session = WhisperSession(model, TranscriptionOptions(live=True), timings=timings)
    decodes = Decodes.of(model)
    before = decodes.count
    clock, stop = 0.0, threading.Event()
    latencies: list[float] = []
    texts: list[str] = []
    for offset in range(0, item.audio.size, CHUNK):
        arrived = min(item.audio.size, offset + CHUNK) / SAMPLE_RATE
        clock = max(clock, arrived)
        session.push(item.audio[offset : offset + CHUNK])
        began = time.perf_counter()
        for out in session.run(offset + CHUNK >= item.audio.size, stop):
            if isinstance(out, Segment):
                now = clock + (time.perf_counter() - began if cpu else 0.0)
                latencies.append(now - min(out.end, arrived))
                texts.append(out.text)
        clock += time.perf_counter() - began if cpu else 0.0
    lag = clock - item.audio.size / SAMPLE_RATE
    return Run(latencies, "".join(texts), decodes.count - before, lag)


class Decodes:
    """Counts the Whisper passes (`transcribe` calls) of a model."""

    def __init__(self, model: WhisperModel) -> None:
        self.count = 0
        transcribe = model.transcribe

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return transcribe(*args, **kwargs)

        model.transcribe = counted

    @classmethod
    def of(cls, model: WhisperModel) -> Decodes:
        """The model's counter, installed on first use."""
        found = getattr(model, "_bench_decodes", None)
        if found is None:
            found = cls(model)
            model._bench_decodes = found
        return found


def row(name: str, item: Input, policy: str, clock: str, run: Run) -> str:
    lat = sorted(run.latencies)
    p95 = lat[int(0.95 * (len(lat) - 1))]
    wer = word_error_rate(item.transcript, run.text)
    return (
        f"| {name} | {policy} | {clock} | {len(lat)} | {statistics.median(lat):.2f} | "
        f"{p95:.2f} | {max(0.0, run.lag):.2f} | {100 * wer:.1f} % | "
        f"{run.decodes / item.seconds:.2f} |"
    )


def main() -> None:
    engine = FasterWhisperEngine(ModelConfig(model="base", cpu_threads=1, model_process="off"))
    engine.load()
    prompts = asterisk_recording("en", count=8)
    inputs = {
        "sample.wav": sample(),
        "Asterisk en (8 prompts)": Input(
            "asterisk", prompts.audio, Annotation(), prompts.transcript
        ),
    }
    rows = []
    for name, item in inputs.items():
        for policy, timings in POLICIES.items():
            for clock, cpu in (("this CPU", True), ("decode time excluded", False)):
                run = stream(engine.model, item, timings, cpu)
                rows.append(row(name, item, policy, clock, run))
                print(rows[-1], flush=True)
    lines = [
        "Command: `python bench/live_words_bench.py`.",
        f"Machine: {machine()}; Whisper base (int8), 1 thread.",
        "One live transcriber session in-process, fed 100 ms chunks in real time. Latency: "
        "from the arrival of a segment's last audio to its emission; lag: from the end of the "
        "audio to the last segment. Pauses: each utterance decoded when it pauses (0.5 s) or "
        "reaches 6 s (`--live-early-words off`, and `auto` on CPU); early words: an open "
        "utterance's words sent once 2 s are unsent, those ending 0.8 s before the audio's "
        "end, forced on here whatever decodes cost (a stream turns them on only while its "
        "decodes take 0.5 s or less). Decode time excluded: the latency the policy itself "
        "adds, what a device decoding in tens of milliseconds would see (not measured on one).",
        "",
        "| input | policy | clock | segments | latency p50 (s) | p95 (s) | lag (s) | WER "
        "| decodes per audio second |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    write_section("Live words", "\n".join(lines))


if __name__ == "__main__":
    main()
