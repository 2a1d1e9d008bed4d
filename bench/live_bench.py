"""Live streams (`ProcessStream`) at real-time pace: latency, provisional speakers, load.

The three services run as subprocesses as `whospoke serve` runs them (Whisper base,
half the cores for each model, the diarizer at `serve`'s niceness). Each input is sent as a
capture device would send it: 100 ms messages at real-time pace. Measured:
- each final segment's latency: from sending the end of its audio to receiving it;
- provisional speakers correct at emission: each word's speaker as first sent,
  against the reference speaker at its midpoint, with provisional labels mapped to
  reference speakers one to one (the mapping that maximises agreement);
- the live result against `Process` on the same audio: identical diarizer turns,
  the DER of both, and the word error rate of both (the live transcript is decoded
  utterance by utterance as the audio comes; `Process` decodes the whole file);
- concurrent streams of sample.wav: how many are held in real time: the backends keep
  pace with the audio, so that no stream gets a `live_lag` warning and each one's result
  comes within 5 s of its last audio (a backlog would grow with the stream's length);
  the latencies are reported beside.
Inputs: sample.wav, and the first 120 s of the Asterisk conversation with
`multilingual` set (its voices speak English, French and Spanish; a stream without it
keeps the first language detected), for the live stream and `Process` alike.
Usage: python bench/live_bench.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyannote.core import Annotation, Segment
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import Input, conversation, sample
from bench.orchestrator_bench import Services
from bench.outcome import result_turns, result_words, scored_der, wer_of
from bench.report import machine, write_section
from whospoke.cli.serve import shared_threads
from whospoke.common.audio import SAMPLE_RATE, float_to_pcm, wav_bytes
from whospoke.common.procs import ServiceProcess
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

MESSAGE = int(0.1 * SAMPLE_RATE)
HELD_BACKLOG = 5.0
"""Seconds from a stream's last audio to its result within which it was held in real time."""
PLAIN = pb.ProcessOptions()
MULTILINGUAL = pb.ProcessOptions(multilingual=True)


@dataclass
class Stream:
    latencies: list[float] = field(default_factory=list)
    words: list[tuple[float, float, str]] = field(default_factory=list)
    """Each word with the speaker it was first sent with."""
    updates: int = 0
    lagged: bool = False
    result: pb.ProcessResult | None = None
    backlog: float = 0.0
    """Seconds from sending the last audio to receiving the result."""


async def stream(
    orchestrator: ServiceProcess, audio: np.ndarray, options: pb.ProcessOptions = PLAIN
) -> Stream:
    pcm = float_to_pcm(audio)
    sent_seconds: list[float] = []
    sent_at: list[float] = []

    async def requests() -> AsyncIterator[pb.ProcessStreamRequest]:
        config = pb.LiveStreamConfig(
            options=options, encoding=pb.PCM_S16LE, sample_rate_hz=SAMPLE_RATE
        )
        yield pb.ProcessStreamRequest(config=config)
        start = time.perf_counter()
        for i, offset in enumerate(range(0, audio.size, MESSAGE)):
            await asyncio.sleep(max(0.0, start + i * MESSAGE / SAMPLE_RATE - time.perf_counter()))
            end = min(offset + MESSAGE, audio.size)
            sent_seconds.append(end / SAMPLE_RATE)
            sent_at.append(time.perf_counter())
            yield pb.ProcessStreamRequest(audio=pcm[2 * offset : 2 * end])

    out = Stream()
    async with orchestrator.channel() as channel:
        call = pb_grpc.OrchestratorStub(channel).ProcessStream(requests(), timeout=3600)
        async for event in call:
            kind = event.WhichOneof("event")
            if kind == "live_segment":
                s = event.live_segment.segment
                index = min(bisect_left(sent_seconds, s.end_seconds - 1e-6), len(sent_at) - 1)
                out.latencies.append(time.perf_counter() - sent_at[index])
                out.words += [(w.start_seconds, w.end_seconds, w.speaker) for w in s.words]
            elif kind == "speaker_update":
                out.updates += 1
            elif kind == "warning" and event.warning.code == "live_lag":
                out.lagged = True
            elif kind == "result":
                out.result = event.result
                out.backlog = time.perf_counter() - sent_at[-1]
    return out


def provisional_accuracy(words: list[tuple[float, float, str]], reference: Annotation) -> float:
    """Words whose speaker as sent is right, under the best one-to-one label mapping."""
    pairs = []
    for start, end, label in words:
        middle = (start + end) / 2
        who = reference.crop(Segment(middle - 1e-3, middle + 1e-3)).labels()
        if len(who) == 1 and label:
            pairs.append((who[0], label))
    refs = sorted({r for r, _ in pairs})
    hyps = sorted({h for _, h in pairs})
    counts = Counter(pairs)
    matrix = np.array([[counts[(r, h)] for h in hyps] for r in refs])
    rows, cols = linear_sum_assignment(-matrix)
    return float(matrix[rows, cols].sum() / max(1, len(pairs)))


def tracks(turns: Annotation) -> list[tuple[float, float, str]]:
    return sorted(
        (s.start, s.end, str(label)) for s, _, label in turns.itertracks(yield_label=True)
    )


def cut(source: Input, seconds: float) -> Input:
    """The first `seconds` of `source`, with the reference turns (and words) that end in it."""
    reference = source.reference.crop(Segment(0, seconds))
    turns = tuple(t for t in source.turns if t[1] <= seconds)
    transcript = " ".join(t[3] for t in turns) if source.turns else source.transcript
    audio = source.audio[: int(seconds * SAMPLE_RATE)]
    return Input(source.name, audio, reference, transcript, turns)


async def measure(
    services: Services, inputs: dict[str, tuple[Input, pb.ProcessOptions]]
) -> list[str]:
    rows = []
    for name, (source, options) in inputs.items():
        live = await stream(services.orchestrator, source.audio, options)
        process = await services.process(wav_bytes(source.audio), options)
        assert live.result is not None
        turns = result_turns(live.result)
        same = tracks(turns) == tracks(process.turns)
        lat = sorted(live.latencies)
        rows.append(
            f"| {name} | {source.seconds:.0f} | {len(lat)} | {statistics.median(lat):.2f} | "
            f"{lat[int(0.95 * (len(lat) - 1))]:.2f} | "
            f"{100 * provisional_accuracy(live.words, source.reference):.1f} % | {live.updates} | "
            f"{100 * scored_der(source.reference, turns, source.seconds):.1f} % | "
            f"{100 * scored_der(source.reference, process.turns, source.seconds):.1f} % | "
            f"{'yes' if same else 'no'} | "
            f"{wer_of(source, live.result.text, result_words(live.result))} | "
            f"{wer_of(source, process.text, process.words)} |"
        )
        print(rows[-1], flush=True)
    return rows


async def concurrency(services: Services, source: Input, most: int) -> list[str]:
    rows = []
    for count in range(1, most + 1):
        streams = await asyncio.gather(
            *(stream(services.orchestrator, source.audio) for _ in range(count))
        )
        p50 = max(statistics.median(s.latencies) for s in streams)
        p95 = max(sorted(s.latencies)[int(0.95 * (len(s.latencies) - 1))] for s in streams)
        backlog = max(s.backlog for s in streams)
        held = not any(s.lagged for s in streams) and backlog <= HELD_BACKLOG
        rows.append(
            f"| {count} | {p50:.2f} / {p95:.2f} | {backlog:.2f} | {'yes' if held else 'no'} |"
        )
        print(rows[-1], flush=True)
        if not held:
            break
    return rows


def main() -> None:
    inputs = {
        "sample": (sample(), PLAIN),
        "conversation (120 s), multilingual": (cut(conversation(), 120.0), MULTILINGUAL),
    }
    services = Services(0, ["--max-concurrent-jobs", "8", "--max-live-streams", "8"])
    threads = shared_threads(0)
    try:
        asyncio.run(services.ready())
        rows = asyncio.run(measure(services, inputs))
        load = asyncio.run(concurrency(services, inputs["sample"][0], 6))
    finally:
        services.stop()
    write_section(
        "Live streams",
        "\n".join(
            [
                "Command: `python bench/live_bench.py`.",
                f"Machine: {machine()}; Whisper base (int8) and segmentation-3.0 + CAM++, "
                f"{threads} thread{'s' if threads > 1 else ''} each on the same cores (as "
                "`whospoke serve` runs them), speaker latency 2 s (the default). Each input is "
                "sent in 100 ms messages at real-time pace; the conversation (English, French and "
                "Spanish voices) with `multilingual`, for the live stream and `Process` alike.",
                "",
                "| input | seconds | segments | latency p50 (s) | p95 (s) | provisional "
                "speaker right | speaker updates | DER live result | DER `Process` | same turns "
                "| WER live result | WER `Process` |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|",
                *rows,
                "",
                "Latency: from sending the end of a segment's audio to receiving the segment. "
                "Provisional speaker: each word's speaker as first sent, against the reference "
                "(one-to-one label mapping). DER collar 0, overlap scored. WER: the live result's "
                "words (decoded utterance by utterance as they came) and `Process`'s (the whole "
                "file), against the reference words; the conversation's per language, the words "
                "inside that language's turns.",
                "",
                "Concurrent live streams of sample.wav (held in real time: no `live_lag` "
                "warning, and every stream's result within "
                f"{HELD_BACKLOG:.0f} s of its last audio):",
                "",
                "| streams | worst p50 / p95 latency (s) | worst seconds from last audio to "
                "result | held in real time |",
                "|---|---|---|---|",
                *load,
            ]
        ),
    )


if __name__ == "__main__":
    main()
