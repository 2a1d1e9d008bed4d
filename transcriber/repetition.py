"""Whisper's repetition loops: finding them in a segment and cutting them off.

When Whisper loses its place it can emit the same few words over and over
("…or increase your volume and increase your volume and increase your volume"),
often until its window ends, so the last repeat is cut off mid-phrase. Those
loops pass faster-whisper's own guard (a compression ratio above 2.4 over the
whole 30 s window) when they are short or the window holds ordinary text too,
so a loop is recognised from the words themselves: a phrase of 1 to
`MAX_NGRAM` words followed at once by `MIN_PHRASE_REPEATS` more copies of
itself (`MIN_SHORT_REPEATS` for a phrase of two words, `MIN_SINGLE_REPEATS`
for a single word), the last of which may be cut off after half of it, as a
loop running into the end of Whisper's window is. People repeat themselves
too ("no, no, no", "New York, New York", "one more time, one more time",
restarts such as "I want to, I want to go", "thank you, thank you, thank
you"); none of that matches, because cutting real speech is worse than leaving
a loop in: a loop is also re-decoded before anything is cut. Pure functions:
the engine decides when to re-decode.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from whospoke.contract.transcription import Segment

MIN_PHRASE_REPEATS = 2
"""Further copies a phrase of 3 or more words must have: a phrase said twice is speech."""
MIN_SHORT_REPEATS = 3
"""Further copies of a two-word phrase: "thank you, thank you, thank you" is speech."""
MIN_SINGLE_REPEATS = 4
"""Further times a single word must come: "no, no, no" is speech, "the the the the the" a loop."""
MAX_NGRAM = 8
"""Longest repeated phrase looked for, in words."""
_NOT_WORD = re.compile(r"[^\w']+")


@dataclass(frozen=True)
class Loop:
    """Words `[start, end)` repeat the `size` words before `start`, cyclically.

    `end` may stop inside a repeat: a loop cut off mid-phrase by the end of the
    segment. `repeats` counts the occurrences, the first and an unfinished last one
    included.
    """

    start: int
    end: int
    size: int

    @property
    def repeats(self) -> int:
        return 1 + -(-(self.end - self.start) // self.size)


def normalise(word: str) -> str:
    """The word as compared: case and punctuation do not make a repeat different."""
    return _NOT_WORD.sub("", word.casefold()) or word.strip()


def find_loop(words: Sequence[str]) -> Loop | None:
    """The first loop in `words`, the longest one starting at that word, or None."""
    tokens = [normalise(w) for w in words]
    for first in range(len(tokens)):
        best: Loop | None = None
        for size in range(1, MAX_NGRAM + 1):
            loop = _repeats_at(tokens, first, size)
            if loop is not None and (best is None or loop.end > best.end):
                best = loop
        if best is not None:
            return best
    return None


def _repeats_at(tokens: Sequence[str], first: int, size: int) -> Loop | None:
    """The loop of the `size`-word phrase at `first`, if it repeats long enough."""
    start = first + size
    if start > len(tokens):
        return None
    end = start
    while end < len(tokens) and tokens[end] == tokens[first + (end - start) % size]:
        end += 1
    repeats = {1: MIN_SINGLE_REPEATS, 2: MIN_SHORT_REPEATS}.get(size, MIN_PHRASE_REPEATS)
    needed = size * (repeats - 1) + max(1, size // 2)  # the last copy may be cut off
    return Loop(start, end, size) if end - start >= needed else None


def segment_words(segment: Segment) -> list[str]:
    """The words a loop is looked for in: the timed words, or the text's when untimed."""
    if segment.words:
        return [w.text for w in segment.words]
    return segment.text.split()


def loop_in(segment: Segment) -> Loop | None:
    return find_loop(segment_words(segment))


def repeated_phrase(segment: Segment, loop: Loop) -> str:
    words = segment_words(segment)[loop.start - loop.size : loop.start]
    return " ".join(w.strip() for w in words)


def cut_loop(segment: Segment, loop: Loop) -> tuple[Segment, float, float]:
    """`segment` without the repeats (the first occurrence stays), and the time cut.

    Untimed segments are cut by word count, and the time range is estimated in
    proportion to it.
    """
    if segment.words:
        kept = segment.words[: loop.start] + segment.words[loop.end :]
        cut_start, cut_end = segment.words[loop.start].start, segment.words[loop.end - 1].end
        text = "".join(w.text for w in kept)
        end = max((w.end for w in kept), default=segment.start)
        runs_to_end = loop.end == len(segment.words)
        shortened = replace(segment, text=text, words=kept, end=end if runs_to_end else segment.end)
        return shortened, cut_start, cut_end
    words = segment.text.split()
    duration = segment.end - segment.start
    cut_start = segment.start + duration * loop.start / len(words)
    cut_end = segment.start + duration * loop.end / len(words)
    text = " " + " ".join(words[: loop.start] + words[loop.end :])
    end = cut_start if loop.end == len(words) else segment.end
    return replace(segment, text=text, end=end), cut_start, cut_end
