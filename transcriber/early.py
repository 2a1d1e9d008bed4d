"""Sending a live utterance's words before it ends.

A live stream's piece closes at a pause of half a second. In continuous speech
that pause can be many seconds away, and every word of the utterance waited
for it: pieces were split at 6 s to bound the wait, yet sample.wav's final
segments came 2.7 s (p50) and 5.8 s (p95) after their speech, and shorter
splits cut words and context (WER 12.6 % at 6 s, 31 % at 3 s).

So while an utterance is still open, once `pending` seconds of it are unsent,
the session decodes the buffer from a little before the first unsent word
(`context`: Whisper hears it again, nothing of it is sent twice) to the end of
the audio, and sends the words that end at least `hold` before that end. Those
words were heard with right context; the last ones may be cut mid-word or
change with what follows, so they wait. The next decode starts where the sent
words stop, and when the utterance closes its last words are sent the same
way, without hold.

Local agreement (whisper_streaming, WhisperLive) sends only what two successive
decodes agree on: safer against a word changing, but each word then waits a
decode period more. Here a word waits `hold` plus one decode.

That needs decodes that are short next to the audio: every pass of Whisper
costs a 30 s encoder window however little audio it holds, 1.7 s for Whisper
base on one Sapphire Rapids core (encoder 0.97 s, beam search 0.75 s), and a
stream decoding that often falls behind (6.7 s behind after sample.wav's 30 s,
bench/live_words_bench.py). So words go early only while the stream's recent
decodes took at most `max_decode` (a GPU's should take tens of milliseconds; not
measured here); otherwise utterances wait for their
pause, split at 6 s (`transcriber.vad.LIVE_VAD`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from transcriber.coverage import Span
from transcriber.repetition import normalise
from transcriber.windows import Region
from whospoke.common.audio import SAMPLE_RATE
from whospoke.contract.transcription import Segment


@dataclass(frozen=True)
class EarlyTimings:
    """When and what to send of an open utterance, in seconds."""

    pending: float = 2.0
    """Unsent audio of an open utterance that starts a decode."""
    hold: float = 0.8
    """Words ending this close to the end of the audio wait for the next decode."""
    context: float = 3.0
    """Audio before the first unsent word decoded again, for Whisper to hear it in context."""
    step: float = 0.5
    """New audio needed between two decodes of an open utterance (not one per chunk)."""
    max_decode: float = 0.5
    """Words go early only while decodes take at most this long (the mean of recent ones)."""


@dataclass
class EarlyWords:
    """Where a live stream's sent text ends within its buffer; samples from the buffer start."""

    timings: EarlyTimings
    floor: int = 0
    """Audio before this is sent (or was silence)."""
    tried: int = -(1 << 62)
    """Samples received when the open utterance was last decoded."""
    decode_seconds: float | None = None
    """Recent decodes' mean duration (None before the first)."""
    sent: tuple[str, ...] = ()
    """The last words sent, compared as repeats are (`repetition.normalise`), to recognise
    them at the start of the next decode."""

    @property
    def fast(self) -> bool:
        """Whether decodes are quick enough to send words early."""
        return self.decode_seconds is not None and self.decode_seconds <= self.timings.max_decode

    def timed(self, seconds: float) -> None:
        """A decode took `seconds`; the mean follows the last few."""
        last = self.decode_seconds
        self.decode_seconds = seconds if last is None else 0.7 * last + 0.3 * seconds

    @property
    def context(self) -> int:
        return int(self.timings.context * SAMPLE_RATE)

    @property
    def hold(self) -> int:
        return int(self.timings.hold * SAMPLE_RATE)

    def due(self, regions: list[Region], buffered: int, received: int) -> bool:
        """Whether the open utterance has enough unsent speech to decode it now."""
        if not self.fast or not regions or regions[-1].end <= self.floor:
            return False
        unsent = buffered - max(self.floor, regions[0].start)
        step = int(self.timings.step * SAMPLE_RATE)
        return unsent >= self.timings.pending * SAMPLE_RATE and received - self.tried >= step

    def parts(self, segments: Iterable[Segment], floor: float, until: float) -> Iterator[Segment]:
        """What to send of one decode's segments (absolute seconds), in order: the words
        from `floor` to `until`, less a repeat of the last words sent at the start."""
        first = True
        for segment in segments:
            part = sent_part(segment, floor, until)
            if part is not None and first:
                part, first = repeated(part, self.sent), False
            if part is not None:
                self.sent = (*self.sent, *(normalise(w.text) for w in part.words))[-5:]
                yield part
            if segment.start >= until:
                return

    def start(self) -> int:
        """Where the next decode starts: `context` before the first unsent word."""
        return max(0, self.floor - self.context)

    def dropped(self, count: int) -> None:
        """The first `count` samples of the buffer were dropped; past the floor, the next
        decode hears none of the words sent, so none can come back."""
        if count >= self.floor:
            self.sent = ()
        self.floor = max(0, self.floor - count)


def sent_part(segment: Segment, floor: float, until: float) -> Segment | None:
    """What of `segment` to send: its words whose middle is at or after `floor` (earlier ones
    were sent, or are context) and that end by `until`; None if no word is left.

    Times in absolute seconds; a segment without words has nothing that can be placed."""
    words = [w for w in segment.words if (w.start + w.end) / 2 >= floor and w.end <= until]
    if not words:
        return None
    if len(words) == len(segment.words):
        return segment
    text = "".join(w.text for w in words)
    return replace(segment, start=words[0].start, end=words[-1].end, text=text, words=tuple(words))


def repeated(segment: Segment, sent: tuple[str, ...], most: int = 5) -> Segment | None:
    """`segment` without leading words that repeat the last words sent (up to `most`).

    Word times move a little from one decode to the next, so the last word sent can come
    back with its middle just past the floor; it is the same word, said once."""
    words = [normalise(w.text) for w in segment.words]
    for n in range(min(most, len(words), len(sent)), 0, -1):
        if tuple(words[:n]) == sent[-n:]:
            rest = segment.words[n:]
            if not rest:
                return None
            text = "".join(w.text for w in rest)
            return replace(segment, start=rest[0].start, text=text, words=rest)
    return segment


def unsent_spans(regions: list[Region], floor: int, end: int, offset: float) -> list[Span]:
    """Speech regions clipped to the unsent audio [floor, end), in absolute seconds."""
    spans = []
    for r in regions:
        start, stop = max(r.start, floor), min(r.end, end)
        if stop > start:
            spans.append(Span(offset + start / SAMPLE_RATE, offset + stop / SAMPLE_RATE))
    return spans
