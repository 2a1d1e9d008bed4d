"""Sentence-aware attribution: short fragments stay with their sentence.

Words get their speakers from the diarizer's exclusive turns, whose boundaries
are a few hundred milliseconds off as often as not, and Whisper's word timings
drift as much. At a change of speaker that falls inside a sentence, the one or
two words on the wrong side of the boundary then go to the other speaker:
"Neither did" / "I. Okay, ..." where one person said "Neither did I." and the
other "Okay". So a fragment of at most `MAX_FRAGMENT_WORDS` words that ends a
sentence (Whisper's punctuation, within one transcript segment), after a longer
part of that sentence, goes to that part's speaker; so does a fragment inside a
sentence whose both sides belong to one speaker. A fragment keeps its own
speaker when the audio says it is someone else: a pause of `EVIDENCE_PAUSE` or
more separates it from the rest of the sentence (a reply, not a continuation),
or its own speaker's turns cover `EVIDENCE_SECONDS` of it (a real utterance,
not a boundary that slipped).

A fragment that starts a sentence stays where the turns put it: there the
punctuation is no evidence, since Whisper often runs the first words of a reply
into one sentence with the end of the previous speaker's (on sample.wav it
wrote "So I don't hear that" where one person said "so what can I say?" and the
other "Oh, I don't hear that"; moving such fragments was right as often as wrong).

Within one segment only: segments are attributed as they arrive, and a rule
that looked at the next segment would make the answer depend on arrival order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from orchestrator.attributed import AttributedWord
from whospoke.contract.transcription import ends_sentence

MAX_FRAGMENT_WORDS = 2
EVIDENCE_PAUSE = 0.5
"""Seconds of silence between a fragment and the rest of its sentence that show a
change of speaker."""
EVIDENCE_SECONDS = 1.0
"""Seconds of a fragment covered by its own speaker's turns that show it was theirs."""


Cover = Callable[[str, float, float], float]
"""(speaker, start, end) -> seconds of [start, end] inside that speaker's turns."""


def runs_of(words: Sequence[AttributedWord]) -> list[list[AttributedWord]]:
    """Consecutive words of one speaker."""
    runs: list[list[AttributedWord]] = []
    for word in words:
        if runs and runs[-1][-1].speaker == word.speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    return runs


def sentences(words: Sequence[AttributedWord]) -> list[list[AttributedWord]]:
    """Words cut after each one that ends a sentence."""
    cut: list[list[AttributedWord]] = [[]]
    for word in words:
        cut[-1].append(word)
        if ends_sentence(word.text):
            cut.append([])
    return [s for s in cut if s]


def keep_sentences(words: Sequence[AttributedWord], cover: Cover) -> list[AttributedWord]:
    """`words` with each fragment without evidence given its sentence's speaker."""
    kept: list[AttributedWord] = []
    for sentence in sentences(words):
        kept.extend(_smooth(sentence, cover))
    return kept


def _smooth(sentence: list[AttributedWord], cover: Cover) -> list[AttributedWord]:
    runs = runs_of(sentence)
    while len(runs) > 1:
        moved = next(
            (
                (i, speaker)
                for i in range(len(runs))
                if (speaker := _joins(runs, i, cover)) is not None
            ),
            None,
        )
        if moved is None:
            break
        i, speaker = moved
        runs[i] = [replace(w, speaker=speaker) for w in runs[i]]
        runs = runs_of([w for run in runs for w in run])
    return [w for run in runs for w in run]


def _joins(runs: list[list[AttributedWord]], i: int, cover: Cover) -> str | None:
    """The speaker fragment `runs[i]` should take (its predecessor's), or None when it stays."""
    run = runs[i]
    if i == 0 or len(run) > MAX_FRAGMENT_WORDS:
        return None  # a sentence's first words stay where the turns put them
    before = runs[i - 1]
    after = runs[i + 1] if i + 1 < len(runs) else None
    if after is not None:  # inside the sentence: both sides must be one speaker's
        if after[0].speaker != before[0].speaker:
            return None
        pause = max(run[0].start - before[-1].end, after[0].start - run[-1].end)
    else:  # its end: punctuated, after a longer part
        if not ends_sentence(run[-1].text) or len(before) <= len(run):
            return None
        pause = run[0].start - before[-1].end
    own = sum(cover(w.speaker, w.start, w.end) for w in run)
    if pause >= EVIDENCE_PAUSE or own >= EVIDENCE_SECONDS:
        return None
    return before[0].speaker
