"""Which detected speech the emitted text accounts for.

Voice activity detection says where speech is; the segments say where text
is. Speech with no text near it was dropped somewhere (the model stopped early
in its window, a filter discarded the text, a loop was cut), and the
transcriber must either recover it or say so. "Covered" is defined on time
spans, so it works for every language and with or without word timestamps:

- a region's speech is the VAD region less the `VAD_PAD` seconds VAD adds on
  each side;
- text covers what lies within `WORD_TOLERANCE` seconds of a word (or of a
  segment, when words are not timed). Word timestamps are off by up to a few
  tenths of a second, and pauses inside a region are shorter than the 1 s of
  silence that closes one, so fully transcribed speech leaves no hole;
- a hole is a stretch of speech of at least `MIN_GAP` seconds that no text
  covers. Shorter stretches are a single missing word, a cough, a click or a
  breath that VAD took for speech; warning about those would be noise.

So a region counts as covered when no second of its speech is more than half a
second away from the text. Pure functions on seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from whospoke.contract.transcription import Segment

VAD_PAD = 0.4
"""Seconds of padding faster-whisper's VAD puts around speech (`speech_pad_ms`)."""
WORD_TOLERANCE = 0.5
"""Seconds around a word that count as covered by it."""
MIN_GAP = 1.0
"""Shortest stretch of speech without text that counts as dropped."""


@dataclass(frozen=True, order=True)
class Span:
    """A stretch of time in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


def speech(region: Span) -> Span:
    """The speech inside a VAD region: the region less VAD's padding."""
    pad = min(VAD_PAD, region.duration / 4)
    return Span(region.start + pad, region.end - pad)


def text_spans(segment: Segment) -> list[Span]:
    """Where a segment has text: its words, or the whole segment when words are untimed."""
    if segment.words:
        return [Span(w.start, w.end) for w in segment.words]
    return [Span(segment.start, segment.end)] if segment.text.strip() else []


def holes(
    speech_spans: Iterable[Span], covered: Iterable[Span], start: float, end: float
) -> list[Span]:
    """Stretches of speech within `[start, end)`, `MIN_GAP` or longer, that nothing covers.

    `covered` spans are widened by `WORD_TOLERANCE` on each side.
    """
    widened = _union(Span(c.start - WORD_TOLERANCE, c.end + WORD_TOLERANCE) for c in covered)
    found: list[Span] = []
    for part in speech_spans:
        rest = Span(max(part.start, start), min(part.end, end))
        if rest.duration <= 0:
            continue
        found += [hole for hole in _subtract(rest, widened) if hole.duration >= MIN_GAP]
    return found


def _union(spans: Iterable[Span]) -> list[Span]:
    merged: list[Span] = []
    for span in sorted(spans):
        if merged and span.start <= merged[-1].end:
            merged[-1] = Span(merged[-1].start, max(merged[-1].end, span.end))
        else:
            merged.append(span)
    return merged


def _subtract(span: Span, sorted_disjoint: Sequence[Span]) -> list[Span]:
    pieces: list[Span] = []
    cursor = span.start
    for cover in sorted_disjoint:
        if cover.end <= cursor or cover.start >= span.end:
            continue
        if cover.start > cursor:
            pieces.append(Span(cursor, cover.start))
        cursor = max(cursor, cover.end)
    if cursor < span.end:
        pieces.append(Span(cursor, span.end))
    return pieces
