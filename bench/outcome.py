"""What one `Process` of a bench input produced, and how it scores against the reference."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from bench.inputs import Input
from whospoke.contract.diarization import Turn
from whospoke.evaluation import word_error_rate
from whospoke.v1 import orchestrator_pb2 as pb

Words = list[tuple[float, float, str]]
"""(start, end, text) of each word, in seconds."""


@dataclass
class Outcome:
    """What one transcription + diarization of an input produced, and when."""

    seconds: float
    first_segment: float
    transcription: float
    diarization: float
    words: Words
    turns: Annotation
    text: str
    timeline: list[tuple[float, float, float]] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    runs: list[float] = field(default_factory=list)


def annotation(turns: Iterable[Turn]) -> Annotation:
    """A diarizer's turns as pyannote scores them."""
    out = Annotation()
    for turn in turns:
        out[Segment(turn.start, turn.end)] = turn.speaker
    return out


def result_turns(result: pb.ProcessResult) -> Annotation:
    """A `Process` (or live) result's diarizer turns as pyannote scores them."""
    out = Annotation()
    for turn in result.diarization_turns:
        out[Segment(turn.start_seconds, turn.end_seconds)] = turn.speaker
    return out


def result_words(result: pb.ProcessResult) -> Words:
    return [(w.start_seconds, w.end_seconds, w.text) for s in result.segments for w in s.words]


def der_metric(collar: float = 0.0) -> DiarizationErrorRate:
    """The one DER every bench reports: overlapping speech scored, `collar` seconds
    forgiven on each side of a reference boundary (pyannote's collar is the total)."""
    return DiarizationErrorRate(collar=2 * collar, skip_overlap=False)


def scored_der(
    reference: Annotation, hypothesis: Annotation, seconds: float, collar: float = 0.0
) -> float:
    """DER over the whole recording (0 to `seconds`), silence included."""
    uem = Timeline([Segment(0, seconds)])
    return float(der_metric(collar)(reference, hypothesis, uem=uem))


def der(source: Input, turns: Annotation, collar: float) -> float:
    return scored_der(source.reference, turns, source.seconds, collar)


def wer(source: Input, outcome: Outcome) -> str:
    """Overall WER, or per speaker-language (words by reference turn) for the conversation."""
    return wer_of(source, outcome.text, outcome.words)


def wer_of(source: Input, text: str, words: Words) -> str:
    """`text`'s WER, or for the conversation per language: the `words` (start, end, text)
    whose middle falls in that language's reference turns."""
    if not source.transcript:
        return "- (no reference transcript)"
    if not source.turns:
        return f"{100 * word_error_rate(source.transcript, text):.1f} %"
    parts = []
    for lang in ("en", "fr", "es"):
        spans = [(s, e, said) for s, e, who, said in source.turns if who == lang]
        if not spans:
            continue
        reference = " ".join(said for *_, said in spans)
        heard = [w for w in words if any(s <= (w[0] + w[1]) / 2 < e for s, e, _ in spans)]
        hypothesis = "".join(word for *_, word in heard)
        parts.append(f"{lang} {100 * word_error_rate(reference, hypothesis, lang):.1f} %")
    return ", ".join(parts)


def accuracy_row(label: str, source: Input, outcome: Outcome) -> str:
    errors = [100 * der(source, outcome.turns, collar) for collar in (0.0, 0.25)]
    return (
        f"| {source.name} | {label} | {outcome.seconds:.1f} | "
        f"{errors[0]:.1f} / {errors[1]:.1f} % "
        f"| {len(outcome.turns.labels())} | {wer(source, outcome)} |"
    )
