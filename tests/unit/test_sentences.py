"""Sentence-aware attribution: fragments at a slipped turn boundary stay with their sentence."""

from __future__ import annotations

from orchestrator.attributed import AttributedSegment
from orchestrator.merge import attribute
from orchestrator.sentences import EVIDENCE_PAUSE, sentences
from whospoke.contract.diarization import Turn
from whospoke.contract.transcription import Segment, Word

A, B = "SPEAKER_00", "SPEAKER_01"


def segment(text: str, start: float = 0.0, step: float = 0.3, language: str = "en") -> Segment:
    """Words of `text` every `step` seconds from `start`, without pauses."""
    words = tuple(
        Word(start + i * step, start + (i + 1) * step, " " + w, 0.9)
        for i, w in enumerate(text.split())
    )
    return Segment(
        0, start, words[-1].end, "".join(w.text for w in words), words, language=language
    )


def said(result: list[AttributedSegment]) -> list[tuple[str, str]]:
    return [(s.speaker, s.text) for s in result]


def test_the_end_of_a_sentence_stays_with_it() -> None:
    """`make demo` printed "Neither did" / "I. Okay, ..." with the boundary 0.1 s early."""
    spoken = segment("Neither did I. Okay, I thought you knew.")
    turns = [Turn(0.0, 0.55, B), Turn(0.55, 3.0, A)]
    assert said(attribute([spoken], turns, sentence_aware=False)) == [
        (B, "Neither did"),
        (A, "I. Okay, I thought you knew."),
    ]
    assert said(attribute([spoken], turns)) == [
        (B, "Neither did I."),
        (A, "Okay, I thought you knew."),
    ]


def test_a_phrase_is_not_split_inside() -> None:
    spoken = segment("we should meet on Tuesday at noon.")
    turns = [Turn(0.0, 0.85, A), Turn(0.85, 1.5, B), Turn(1.5, 3.0, A)]
    assert said(attribute([spoken], turns)) == [(A, "we should meet on Tuesday at noon.")]


def test_a_pause_is_evidence_of_a_new_speaker() -> None:
    """ "Right." after a pause is a reply: it keeps the speaker the turns give it."""
    words = (
        Word(0.0, 0.3, " Is", 0.9),
        Word(0.3, 0.6, " that", 0.9),
        Word(0.6, 0.9, " right", 0.9),
        Word(1.0 + EVIDENCE_PAUSE, 1.3 + EVIDENCE_PAUSE, " Right.", 0.9),
    )
    spoken = Segment(0, 0.0, words[-1].end, "".join(w.text for w in words), words)
    turns = [Turn(0.0, 1.0, A), Turn(1.0, 2.0, B)]
    assert said(attribute([spoken], turns)) == [(A, "Is that right"), (B, "Right.")]


def test_a_long_turn_is_evidence_of_a_new_speaker() -> None:
    """Two slow words fully inside the other speaker's long turn are theirs."""
    spoken = segment("so you said that. Absolutely. Right.", step=0.6)
    turns = [Turn(0.0, 2.4, A), Turn(2.4, 5.0, B)]
    assert said(attribute([spoken], turns)) == [(A, "so you said that."), (B, "Absolutely. Right.")]


def test_the_start_of_a_sentence_keeps_its_speaker() -> None:
    """Whisper runs a reply's first words into the previous sentence as often as not."""
    spoken = segment("down here. So I don't hear that now.")
    turns = [Turn(0.0, 1.2, B), Turn(1.2, 3.0, A)]
    assert said(attribute([spoken], turns)) == [(B, "down here. So I"), (A, "don't hear that now.")]


def test_segments_keep_their_language() -> None:
    spoken = segment("hola a todos. Hello there.", language="es")
    turns = [Turn(0.0, 0.9, A), Turn(0.9, 2.0, B)]
    assert [(s.speaker, s.language) for s in attribute([spoken], turns)] == [(A, "es"), (B, "es")]


def test_sentences_end_at_punctuation_in_any_script() -> None:
    spoken = segment('He said "stop." Then\u3002 Why? Fine')
    turns = [Turn(0.0, 5.0, A)]
    words = [w for s in attribute([spoken], turns) for w in s.words]
    assert ["".join(w.text for w in s).strip() for s in sentences(words)] == [
        'He said "stop."',
        "Then\u3002",
        "Why?",
        "Fine",
    ]
