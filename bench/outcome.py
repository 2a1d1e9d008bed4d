"""What one `Process` of a bench input produced, and how it scores against the reference."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from bench.inputs import Input
from whospoke.evaluation import word_error_rate


@dataclass
class Outcome:
    """What one transcription + diarization of an input produced, and when."""

    seconds: float
    first_segment: float
    transcription: float
    diarization: float
    words: list[tuple[float, float, str]]
    turns: Annotation
    text: str
    timeline: list[tuple[float, float, float]] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    runs: list[float] = field(default_factory=list)


def der(source: Input, turns: Annotation, collar: float) -> float:
    metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=False)
    uem = Timeline([Segment(0, source.seconds)])
    return float(metric(source.reference, turns, uem=uem))


def wer(source: Input, outcome: Outcome) -> str:
    """Overall WER, or per speaker-language (words by reference turn) for the conversation."""
    if not source.transcript:
        return "- (no reference transcript)"
    if not source.turns:
        return f"{100 * word_error_rate(source.transcript, outcome.text):.1f} %"
    parts = []
    for lang in ("en", "fr", "es"):
        spans = [(s, e, text) for s, e, who, text in source.turns if who == lang]
        reference = " ".join(text for *_, text in spans)
        said = [w for w in outcome.words if any(s <= (w[0] + w[1]) / 2 < e for s, e, _ in spans)]
        hypothesis = "".join(text for *_, text in said)
        parts.append(f"{lang} {100 * word_error_rate(reference, hypothesis, lang):.1f} %")
    return ", ".join(parts)


def accuracy_row(label: str, source: Input, outcome: Outcome) -> str:
    errors = [100 * der(source, outcome.turns, collar) for collar in (0.0, 0.25)]
    return (
        f"| {source.name} | {label} | {outcome.seconds:.1f} | "
        f"{errors[0]:.1f} / {errors[1]:.1f} % "
        f"| {len(outcome.turns.labels())} | {wer(source, outcome)} |"
    )
