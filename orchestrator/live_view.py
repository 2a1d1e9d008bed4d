"""Speakers of a live stream's words while it is spoken, kept right as evidence comes in.

A live transcript segment goes out as soon as the transcriber finalises it, its
words attributed with the diarizer's provisional turns (`DiarizeResponse.live`)
by the same rule as a file's (`orchestrator.merge`). The turns lag the audio by
their latency, so a segment's last words are often past the audio they cover;
those take the speaker heard last, the best guess at that moment. When later
turns cover them, or relabel them, the segment's new speakers go out as a
`SpeakerUpdate` (only when something changed), so a client's view stays right
without re-reading the transcript. After the stream ends, the offline clustering
over the whole stream gives the result's speakers, and one final update per
segment that differs brings every live segment to them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from orchestrator.attributed import AttributedSegment, AttributedWord
from orchestrator.domain import LiveTurns
from orchestrator.merge import SpeakerIndex, attributed_words
from whospoke.contract.diarization import Turn
from whospoke.contract.transcription import Segment

CONTEXT_SECONDS = 30.0
"""Turns this far before the oldest unsettled segment still count for attributing it."""


@dataclass(frozen=True)
class LiveSegment:
    """A final transcript segment of a live stream, with provisional speakers."""

    index: int
    segment: AttributedSegment
    latency: float
    """Seconds from the arrival of the segment's last audio to now."""


@dataclass(frozen=True)
class SpeakerUpdate:
    """New speakers for the words of live segment `index`."""

    index: int
    speaker: str
    word_speakers: tuple[str, ...]
    final: bool = False


class Arrivals(Protocol):
    """When audio arrived (`orchestrator.live_audio.LiveAudio`)."""

    def received_at(self, seconds: float) -> float:
        """When the audio up to `seconds` had arrived, as a perf_counter time."""
        ...


@dataclass
class LiveView:
    """The live segments sent so far and the speakers each was last sent with."""

    audio: Arrivals
    turns: list[Turn] = field(default_factory=list)
    until: float = 0.0
    """Audio up to here has provisional turns."""
    segments: list[Segment] = field(default_factory=list)
    sent: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    """(speaker, word speakers) each segment was last sent with."""
    settled: int = 0
    """Segments before this index lie within `until`: new turns no longer change them."""

    def segment(self, segment: Segment) -> LiveSegment:
        """A new transcript segment, attributed with the turns known now."""
        index = len(self.segments)
        self.segments.append(segment)
        attributed = _attributed(segment, self._index(index))
        self.sent.append(_speakers(attributed))
        self._settle()
        latency = max(0.0, time.perf_counter() - self.audio.received_at(segment.end))
        return LiveSegment(index, attributed, latency)

    def turns_arrived(self, live: LiveTurns) -> list[SpeakerUpdate]:
        """More provisional turns: updates for the unsettled segments they change."""
        self.turns.extend(live.turns)
        self.until = max(self.until, live.until)
        updates = self._relabel(self._index(self.settled), range(self.settled, len(self.segments)))
        self._settle()
        return updates

    def final(self, exclusive_turns: Sequence[Turn]) -> list[SpeakerUpdate]:
        """The result's speakers for every segment whose speakers they change."""
        index = SpeakerIndex(exclusive_turns)
        return self._relabel(index, range(len(self.segments)), final=True)

    def _relabel(
        self, index: SpeakerIndex, indices: range, final: bool = False
    ) -> list[SpeakerUpdate]:
        updates = []
        for i in indices:
            speakers = _speakers(_attributed(self.segments[i], index))
            if speakers != self.sent[i]:
                self.sent[i] = speakers
                updates.append(SpeakerUpdate(i, speakers[0], speakers[1], final))
        return updates

    def _index(self, first: int) -> SpeakerIndex:
        """The turns that may decide segments from `first` on."""
        if first >= len(self.segments):
            return SpeakerIndex(self.turns[-1:])
        since = self.segments[first].start - CONTEXT_SECONDS
        return SpeakerIndex([t for t in self.turns if t.end >= since])

    def _settle(self) -> None:
        while self.settled < len(self.segments) and self.segments[self.settled].end <= self.until:
            self.settled += 1


def _attributed(segment: Segment, index: SpeakerIndex) -> AttributedSegment:
    """The whole segment (never split, so that updates can refer to it) with its words'
    speakers; the segment's speaker is the one speaking most of its words."""
    if not segment.words:
        speaker = index.speaker(segment.start, segment.end)
        words: tuple[AttributedWord, ...] = ()
    else:
        words = tuple(attributed_words(segment, index))
        speaker = _main_speaker(words)
    text = segment.text.strip()
    return AttributedSegment(segment.start, segment.end, speaker, text, words, segment.language)


def _main_speaker(words: Sequence[AttributedWord]) -> str:
    spoken: dict[str, float] = defaultdict(float)
    for word in words:
        spoken[word.speaker] += max(word.end - word.start, 1e-3)
    return max(spoken.items(), key=lambda item: item[1])[0]


def _speakers(segment: AttributedSegment) -> tuple[str, tuple[str, ...]]:
    return segment.speaker, tuple(w.speaker for w in segment.words)
