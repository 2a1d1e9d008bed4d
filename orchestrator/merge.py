"""Attributing transcript words to speakers: pure functions over the two services' results.

Each word goes to the speaker whose exclusive turns overlap it most; a word in a
gap between turns goes to the nearest turn. Short sentence fragments then
join their sentence's speaker unless the audio shows a change of speaker
(orchestrator/sentences.py). Segments are split wherever the speaker changes
between consecutive words. Segments without word timings are
attributed as a whole. With no turns at all, speakers stay empty.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence

from orchestrator.attributed import AttributedSegment, AttributedWord
from orchestrator.sentences import keep_sentences, runs_of
from whospoke.contract.diarization import Turn
from whospoke.contract.transcription import Segment, Word


class SpeakerIndex:
    """Exclusive turns sorted by time, for overlap and nearest-turn queries."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self._turns = sorted(turns, key=lambda t: (t.start, t.end))
        self._starts = [t.start for t in self._turns]
        self._max_end = [0.0] * len(self._turns)
        running = float("-inf")
        for i, turn in enumerate(self._turns):
            running = max(running, turn.end)
            self._max_end[i] = running

    def overlaps(self, start: float, end: float) -> dict[str, float]:
        """Seconds of [start, end] inside each speaker's turns."""
        overlaps: dict[str, float] = defaultdict(float)
        first = bisect_right(self._max_end, start)
        for turn in self._turns[first:]:
            if turn.start >= end:
                break
            overlap = min(end, turn.end) - max(start, turn.start)
            if overlap > 0:
                overlaps[turn.speaker] += overlap
        return overlaps

    def covered(self, speaker: str, start: float, end: float) -> float:
        return self.overlaps(start, end).get(speaker, 0.0)

    def speaker(self, start: float, end: float) -> str:
        """The speaker overlapping [start, end] most, else the nearest one; "" without turns."""
        if not self._turns:
            return ""
        overlaps = self.overlaps(start, end)
        if overlaps:
            return max(overlaps.items(), key=lambda item: (item[1], -_order(item[0])))[0]
        return self._nearest(start, end)

    def _nearest(self, start: float, end: float) -> str:
        """The turn closest to [start, end]: the last one before or the first one after."""
        after = bisect_right(self._starts, start)
        candidates = self._turns[max(after - 1, 0) : after + 1]
        best = min(candidates, key=lambda t: (_gap(t, start, end), t.start))
        return best.speaker


def _gap(turn: Turn, start: float, end: float) -> float:
    return max(turn.start - end, start - turn.end, 0.0)


def _order(label: str) -> int:
    digits = "".join(c for c in label if c.isdigit())
    return int(digits) if digits else 0


def attribute(
    segments: Sequence[Segment], turns: Sequence[Turn], sentence_aware: bool = True
) -> list[AttributedSegment]:
    """Speaker-attributed segments, split where the speaker changes.

    `sentence_aware` keeps short sentence fragments with their sentence (see
    `keep_sentences`); off, each word keeps the speaker its timing gives it.
    """
    index = SpeakerIndex(turns)
    result: list[AttributedSegment] = []
    for segment in segments:
        if not segment.words:
            speaker = index.speaker(segment.start, segment.end)
            text = segment.text.strip()
            result.append(
                AttributedSegment(segment.start, segment.end, speaker, text, (), segment.language)
            )
            continue
        result.extend(_split(attributed_words(segment, index, sentence_aware), segment.language))
    return result


def attributed_words(
    segment: Segment, index: SpeakerIndex, sentence_aware: bool = True
) -> list[AttributedWord]:
    """The segment's words, each with its speaker (see `attribute`)."""
    words = [_attributed(word, index) for word in segment.words]
    if sentence_aware:
        words = keep_sentences(words, index.covered)
    return words


def _attributed(word: Word, index: SpeakerIndex) -> AttributedWord:
    speaker = index.speaker(word.start, word.end)
    return AttributedWord(word.start, word.end, word.text, word.probability, speaker)


def _split(words: list[AttributedWord], language: str) -> list[AttributedSegment]:
    return [
        AttributedSegment(
            start=run[0].start,
            end=run[-1].end,
            speaker=run[0].speaker,
            text="".join(w.text for w in run).strip(),
            words=tuple(run),
            language=language,
        )
        for run in runs_of(words)
    ]


def full_text(segments: Sequence[AttributedSegment]) -> str:
    return " ".join(s.text for s in segments if s.text)
