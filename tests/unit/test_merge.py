"""Word-to-speaker attribution on hand-made cases."""

from __future__ import annotations

from orchestrator.merge import SpeakerIndex, attribute, full_text
from whospoke.contract.diarization import Turn
from whospoke.contract.transcription import Segment, Word


def words(*spans: tuple[float, float, str]) -> tuple[Word, ...]:
    return tuple(Word(start, end, f" {text}", 0.9) for start, end, text in spans)


def segment(*spans: tuple[float, float, str]) -> Segment:
    ws = words(*spans)
    return Segment(0, ws[0].start, ws[-1].end, "".join(w.text for w in ws), ws)


A, B = "SPEAKER_00", "SPEAKER_01"


def test_split_where_the_speaker_changes() -> None:
    turns = [Turn(0.0, 2.0, A), Turn(2.0, 4.0, B)]
    result = attribute([segment((0.1, 0.5, "hello"), (0.6, 1.0, "there"), (2.2, 2.6, "hi"))], turns)
    assert [(s.speaker, s.text, s.start, s.end) for s in result] == [
        (A, "hello there", 0.1, 1.0),
        (B, "hi", 2.2, 2.6),
    ]
    assert [w.speaker for s in result for w in s.words] == [A, A, B]
    assert full_text(result) == "hello there hi"


def test_a_word_straddling_turns_goes_to_the_larger_overlap() -> None:
    turns = [Turn(0.0, 1.0, A), Turn(1.0, 3.0, B)]
    [only] = attribute([segment((0.7, 1.5, "straddle"))], turns)
    assert only.speaker == B
    [other] = attribute([segment((0.2, 1.1, "mostly"))], turns)
    assert other.speaker == A


def test_overlaps_are_summed_per_speaker() -> None:
    turns = [Turn(0.0, 0.4, A), Turn(0.4, 0.7, B), Turn(0.7, 1.0, A)]
    assert SpeakerIndex(turns).speaker(0.2, 1.0) == A


def test_words_in_gaps_go_to_the_nearest_turn() -> None:
    turns = [Turn(0.0, 1.0, A), Turn(5.0, 6.0, B)]
    result = attribute([segment((1.5, 1.8, "near"), (4.0, 4.5, "later"))], turns)
    assert [(s.speaker, s.text) for s in result] == [(A, "near"), (B, "later")]
    index = SpeakerIndex(turns)
    assert index.speaker(10.0, 11.0) == B
    assert index.speaker(-1.0, -0.5) == A
    assert index.speaker(3.0, 3.0) == A


def test_one_word_turn() -> None:
    """Word by word, a one-word turn gets its word; as its own sentence it keeps it too."""
    turns = [Turn(0.0, 1.0, A), Turn(1.0, 1.3, B), Turn(1.3, 3.0, A)]
    spoken = segment((0.2, 0.8, "so"), (1.05, 1.25, "yes"), (1.5, 2.0, "right"))
    result = attribute([spoken], turns, sentence_aware=False)
    assert [(s.speaker, s.text) for s in result] == [(A, "so"), (B, "yes"), (A, "right")]
    punctuated = segment((0.2, 0.8, "so."), (1.05, 1.25, "yes."), (1.5, 2.0, "right"))
    result = attribute([punctuated], turns)
    assert [(s.speaker, s.text) for s in result] == [(A, "so."), (B, "yes."), (A, "right")]


def test_empty_inputs() -> None:
    assert attribute([], [Turn(0.0, 1.0, A)]) == []
    result = attribute([segment((0.0, 0.5, "alone"))], [])
    assert result[0].speaker == "" and result[0].words[0].speaker == ""


def test_segments_without_word_timings_are_attributed_whole() -> None:
    turns = [Turn(0.0, 1.0, A), Turn(1.0, 5.0, B)]
    result = attribute([Segment(0, 0.5, 4.0, " whole segment")], turns)
    assert [(s.speaker, s.text, s.words) for s in result] == [(B, "whole segment", ())]


def test_every_word_gets_a_speaker_when_there_are_turns() -> None:
    turns = [Turn(3.0, 4.0, B)]
    spans = [(float(i), i + 0.5, f"w{i}") for i in range(10)]
    result = attribute([segment(*spans)], turns)
    assert all(w.speaker == B for s in result for w in s.words)
