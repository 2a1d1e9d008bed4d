"""Checking one piece's segments as they arrive: no loops, no speech left without text.

Whisper drops speech in ways faster-whisper does not report: a window ends with
"no more speech" after the first utterance and the rest of the window is
skipped, a short last window is judged silence, a loop replaces the words. The
review sees each decoded segment in time order and, before passing it on:

- looks for a repetition loop in it; a looping segment is decoded again on its
  own (a different window, nothing carried over), and if the loop persists the
  repeats are cut and a `repetition` warning names the time they covered;
- looks for holes in the speech before it (`coverage.holes`); each hole is
  decoded again on its own, and what that recovers is passed on in time order.
  Recovered text must be confident (`doubt`), since the first pass left it out;
  what is still not covered gets a `low_confidence` warning naming the filter
  that dropped the text, or `no_text` when the model produced none.

So every hole is decided, and warned about, as soon as the text after it
arrives, not at the end of the stream. The decoder is passed in: tests use a
fake, the engine faster-whisper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from transcriber.coverage import WORD_TOLERANCE, Span, holes, speech, text_spans
from transcriber.repetition import cut_loop, loop_in, repeated_phrase
from whospoke.contract.transcription import Segment, SpeechWarning

Decode = Callable[[Span], list[Segment]]
"""Decode the audio of a span on its own; segments in absolute seconds, none filtered."""
Item = Segment | SpeechWarning

NO_SPEECH_LIMIT = 0.6
"""faster-whisper's `no_speech_threshold`: above it the model judges the audio not speech."""
LOGPROB_LIMIT = -1.0
"""faster-whisper's `log_prob_threshold`: below it the model is unsure of its text."""
QUOTE_CHARS = 60
"""Characters of dropped text quoted in a warning."""


def doubt(segment: Segment) -> str | None:
    """Why recovered text is not trusted, or None.

    faster-whisper drops a window's text when both limits are crossed; text the
    first pass left out must pass both, since hallucinations on noise look like this.
    """
    if segment.no_speech_prob > NO_SPEECH_LIMIT:
        return f"no_speech_prob {segment.no_speech_prob:.2f} is above {NO_SPEECH_LIMIT}"
    if segment.avg_logprob < LOGPROB_LIMIT:
        return f"avg_logprob {segment.avg_logprob:.2f} is below {LOGPROB_LIMIT}"
    return None


@dataclass
class PieceReview:
    """The review of one piece; `add` each segment in order, then `finish`."""

    regions: Sequence[Span]
    decode: Decode
    _speech: list[Span] = field(init=False)
    _accounted: list[Span] = field(default_factory=list, init=False)
    _checked: float = field(default=float("-inf"), init=False)

    def __post_init__(self) -> None:
        self._speech = [speech(r) for r in self.regions]

    def add(self, segment: Segment) -> list[Item]:
        """What to emit for `segment`: recovered text before it, itself, its warnings."""
        fixed, warnings = self._unloop(segment)
        spans = [s for f in fixed for s in text_spans(f)]
        start = min((s.start for s in spans), default=segment.start)
        out = self._settle(start - WORD_TOLERANCE)
        self._accounted += spans
        return out + list(fixed) + list(warnings)

    def finish(self, end: float) -> list[Item]:
        """What to emit for the speech after the last segment, up to the piece's `end`."""
        return self._settle(end)

    def _settle(self, until: float) -> list[Item]:
        """Recover or warn about every hole before `until` not settled yet."""
        out: list[Item] = []
        for hole in holes(self._speech, self._accounted, self._checked, until):
            out += self._recover(hole)
        self._checked = max(self._checked, until)
        return out

    def _unloop(self, segment: Segment) -> tuple[list[Segment], list[SpeechWarning]]:
        """`segment`, or its span decoded again if it loops, or it with the loop cut.

        The new decoding replaces the segment only if it neither loops nor is doubtful:
        text the first pass produced with confidence is not traded for worse.
        """
        loop = loop_in(segment)
        if loop is None:
            return [segment], []
        again = [s for s in self.decode(Span(segment.start, segment.end)) if s.text.strip()]
        if again and all(loop_in(s) is None and doubt(s) is None for s in again):
            return again, []
        return self._cut_loops([segment])

    def _cut_loops(self, segments: list[Segment]) -> tuple[list[Segment], list[SpeechWarning]]:
        kept: list[Segment] = []
        warnings: list[SpeechWarning] = []
        for segment in segments:
            while (loop := loop_in(segment)) is not None:
                phrase = repeated_phrase(segment, loop)
                segment, start, end = cut_loop(segment, loop)
                warnings.append(
                    SpeechWarning(
                        "repetition",
                        f"the model repeated {phrase!r} {loop.repeats} times and decoding "
                        "again did not stop it; the repeats were cut",
                        start,
                        end,
                    )
                )
                self._accounted.append(Span(start, end))
            if segment.text.strip():
                kept.append(segment)
        return kept, warnings

    def _recover(self, hole: Span) -> list[Item]:
        """Decode `hole` on its own; emit the confident text, warn about the rest."""
        decoded = [s for s in self.decode(hole) if s.text.strip()]
        confident = [s for s in decoded if doubt(s) is None]
        doubtful = [s for s in decoded if doubt(s) is not None]
        kept, warnings = self._cut_loops(confident)
        for segment in kept:
            self._accounted += text_spans(segment)
        out: list[Item] = [*kept, *warnings]
        for rest in holes([hole], self._accounted, hole.start, hole.end):
            out.append(_unrecovered(rest, doubtful))
            self._accounted.append(rest)
        return sorted(out, key=lambda item: item.start)


def _unrecovered(hole: Span, doubtful: Sequence[Segment]) -> SpeechWarning:
    where = f"{hole.start:.1f}-{hole.end:.1f} s"
    dropped = [s for s in doubtful if Span(s.start, s.end).overlaps(hole)] or list(doubtful)
    if not dropped:
        return SpeechWarning(
            "no_text",
            f"speech at {where} produced no text, even decoded on its own",
            hole.start,
            hole.end,
        )
    text = "".join(s.text for s in dropped).strip()
    quoted = text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"
    return SpeechWarning(
        "low_confidence",
        f"text for the speech at {where} was dropped ({doubt(dropped[0])}): {quoted!r}",
        hole.start,
        hole.end,
    )
