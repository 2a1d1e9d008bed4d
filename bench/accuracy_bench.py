"""Accuracy benchmark: who said what, through `Process`, with the default settings.

The three services run as subprocesses (Whisper base int8 unless `--model`;
segmentation-3.0 + CAM++), `--threads` threads per model. For each input it reports
DER (collar 0 and 0.25 s, overlap scored), speakers found against the reference,
word-speaker accuracy (each word's speaker against the reference speaker at its
midpoint, each hypothesis label mapped to its majority reference speaker) for the
word-level and the sentence-aware attribution of the same result, WER (per
language on the conversation), and the time each service took:
- the ten dev clips one by one, and joined into one 5-minute meeting (21 speakers);
- pyannote's sample.wav, with Whisper base and with tiny.en (`make demo`'s model);
- the Asterisk conversation (en, fr, es prompts, two voices), with and without
  `multilingual`; the meeting with `multilingual` too, for its cost on one language.

Usage: .venv/bin/python bench/accuracy_bench.py [--threads 2] [--save DIR]
(`--save` keeps each `ProcessResult` for offline study of attribution.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyannote.core import Segment

from bench.diarizer_tuning import total_der
from bench.inputs import DEV_DATA, Input, clips, conversation, joined, sample
from bench.outcome import result_turns
from bench.report import machine, write_section
from orchestrator.merge import attribute
from whospoke.common.audio import SAMPLE_RATE, wav_bytes
from whospoke.common.procs import ServiceProcess
from whospoke.contract.diarization import turns_from_pb
from whospoke.contract.transcription import segment_from_pb
from whospoke.evaluation import word_error_rate
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc


@dataclass(frozen=True)
class Run:
    """One `Process` call: its input, options and result."""

    label: str
    source: Input
    result: pb.ProcessResult


class Stack:
    """A diarizer shared by one transcriber + orchestrator pair per Whisper model."""

    def __init__(self, threads: int, models: tuple[str, ...]) -> None:
        self.diarizer = ServiceProcess.start("diarizer", ["--threads", str(threads)])
        self.orchestrators: dict[str, ServiceProcess] = {}
        self.all = [self.diarizer]
        for model in models:
            args = ["--model", model, "--cpu-threads", str(threads)]
            transcriber = ServiceProcess.start("transcriber", args)
            backends = ["--transcriber", transcriber.address, "--diarizer", self.diarizer.address]
            orchestrator = ServiceProcess.start("orchestrator", backends)
            self.orchestrators[model] = orchestrator
            self.all += [transcriber, orchestrator]

    async def ready(self) -> None:
        await asyncio.gather(*(s.wait_serving(within=600) for s in self.all))

    def stop(self) -> None:
        for s in reversed(self.all):
            s.stop()

    async def process(self, model: str, source: Input, multilingual: bool) -> pb.ProcessResult:
        async with self.orchestrators[model].channel() as channel:
            stub = pb_grpc.OrchestratorStub(channel)
            request = pb.ProcessRequest(
                options=pb.ProcessOptions(multilingual=multilingual), audio=wav_bytes(source.audio)
            )
            async for event in stub.Process(request, timeout=3600):
                if event.WhichOneof("event") == "result":
                    return event.result
        raise RuntimeError(f"no result for {source.name}")


def der(items: list[Run], collar: float) -> float:
    """DER over the runs together (the tuning bench's total: error over reference speech)."""
    scored = [(r.source.reference, result_turns(r.result), r.source.seconds) for r in items]
    return 100 * total_der(scored, collar)


def word_speaker_accuracy(items: list[Run], sentence_aware: bool) -> float:
    """Share of words whose speaker is the reference one at their midpoint.

    Words in overlapped or unannotated reference speech are not scored; each
    hypothesis label counts as the reference speaker most of its words fall on.
    """
    right = scored = 0
    for run in items:
        segments = [segment_from_pb(s) for s in run.result.transcription_segments]
        turns = turns_from_pb(run.result.exclusive_turns)
        words = [w for s in attribute(segments, turns, sentence_aware) for w in s.words]
        pairs = []
        for word in words:
            middle = (word.start + word.end) / 2
            labels = run.source.reference.crop(Segment(middle - 1e-3, middle + 1e-3)).labels()
            if len(labels) == 1:
                pairs.append((word.speaker, labels[0]))
        votes: dict[str, Counter[str]] = defaultdict(Counter)
        for mine, theirs in pairs:
            votes[mine][theirs] += 1
        right += sum(votes[mine].most_common(1)[0][0] == theirs for mine, theirs in pairs)
        scored += len(pairs)
    return 100 * right / max(scored, 1)


def wer(run: Run) -> str:
    """Overall WER, or per language (words by reference turn) for the conversation."""
    if not run.source.transcript:
        return "-"
    words = [w for s in run.result.segments for w in s.words]
    if not run.source.turns:
        return f"{100 * word_error_rate(run.source.transcript, run.result.text):.1f} %"
    parts = []
    for lang in ("es", "fr", "en"):
        spans = [(s, e, text) for s, e, who, text in run.source.turns if who == lang]
        reference = " ".join(text for *_, text in spans)
        said = "".join(
            w.text
            for w in words
            if any(s <= (w.start_seconds + w.end_seconds) / 2 < e for s, e, _ in spans)
        )
        parts.append(f"{lang} {100 * word_error_rate(reference, said, lang):.0f}")
    return " / ".join(parts) + " %"


def row(name: str, items: list[Run]) -> str:
    found = sum(len(result_turns(r.result).labels()) for r in items)
    true = sum(len(r.source.reference.labels()) for r in items)
    exact = sum(
        len(result_turns(r.result).labels()) == len(r.source.reference.labels()) for r in items
    )
    t = [r.result.timings for r in items]
    languages = ", ".join(f"{x.language} {100 * x.share:.0f} %" for x in items[0].result.languages)
    return (
        f"| {name} | {der(items, 0):.1f} / {der(items, 0.25):.1f} % | {found} of {true}"
        f"{f' ({exact}/{len(items)} exact)' if len(items) > 1 else ''} | "
        f"{word_speaker_accuracy(items, False):.1f} → "
        f"{word_speaker_accuracy(items, True):.1f} % | {wer(items[0])} | "
        f"{languages or items[0].result.language or '-'} | "
        f"{sum(x.transcription_seconds for x in t):.1f} | "
        f"{sum(x.diarization_seconds for x in t):.1f} |"
    )


async def measure(args: argparse.Namespace) -> dict[str, list[Run]]:
    stack = Stack(args.threads, (args.model, "tiny.en"))
    runs: dict[str, list[Run]] = {}
    meeting_audio, meeting_reference = joined(clips(args.data))
    meeting = Input("meeting", meeting_audio, meeting_reference)
    talk, demo = conversation(), sample()
    plan: list[tuple[str, str, list[Input], bool]] = [
        (f"sample.wav ({args.model})", args.model, [demo], False),
        ("sample.wav (tiny.en)", "tiny.en", [demo], False),
        ("conversation", args.model, [talk], False),
        ("conversation, multilingual", args.model, [talk], True),
        ("dev clips one by one", args.model, clip_inputs(args.data), False),
        ("dev clips joined (meeting)", args.model, [meeting], False),
        ("meeting, multilingual", args.model, [meeting], True),
    ]
    try:
        await stack.ready()
        for name, model, sources, multilingual in plan:
            runs[name] = []
            for source in sources:
                result = await stack.process(model, source, multilingual)
                runs[name].append(Run(name, source, result))
                if args.save:
                    path = args.save / f"{name}-{source.name}.pb".replace(" ", "_")
                    path.write_bytes(result.SerializeToString())
            print(row(name, runs[name]), flush=True)
    finally:
        stack.stop()
    return runs


def clip_inputs(data: Path) -> list[Input]:
    wavs = sorted(data.glob("*.wav"))
    return [
        Input(wav.stem, audio, reference)
        for wav, (audio, reference) in zip(wavs, clips(data), strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="base")
    parser.add_argument("--data", type=Path, default=DEV_DATA)
    parser.add_argument("--save", type=Path, help="folder to keep each ProcessResult in")
    args = parser.parse_args()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    runs = asyncio.run(measure(args))
    lines = [
        "Command: `python bench/accuracy_bench.py`.",
        f"Machine: {machine()}; {args.threads} threads for each model, both on the same cores.",
        f"Whisper {args.model} (int8) unless named; segmentation-3.0 + CAM++; default settings, "
        "nothing tuned per input. DER collar 0 / 0.25 s with overlap scored; word-speaker "
        "accuracy word-level → sentence-aware attribution of the same result; WER normalised "
        f"(conversation: es / fr / en turns); {SAMPLE_RATE // 1000} kHz input.",
        "",
        "| input | DER | speakers found of true | word-speaker accuracy | WER | languages "
        "| transcription (s) | diarization (s) |",
        "|---|---|---|---|---|---|---|---|",
        *(row(name, items) for name, items in runs.items()),
    ]
    write_section("Accuracy", "\n".join(lines))
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
