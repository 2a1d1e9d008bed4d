"""The benches' one DER and WER scoring (`bench/outcome.py`): what every table reports."""

from __future__ import annotations

import numpy as np
import pytest
from pyannote.core import Annotation, Segment

from bench.inputs import Input
from bench.live_bench import cut
from bench.outcome import scored_der, wer_of
from whospoke.common.audio import SAMPLE_RATE


def annotation(*turns: tuple[float, float, str]) -> Annotation:
    out = Annotation()
    for start, end, who in turns:
        out[Segment(start, end)] = who
    return out


def conversation() -> Input:
    """Two languages taking turns over 10 s, with their words."""
    turns = ((0.0, 4.0, "en", "hello there"), (5.0, 9.0, "fr", "bonjour"))
    reference = annotation(*((s, e, who) for s, e, who, _ in turns))
    audio = np.zeros(10 * SAMPLE_RATE, dtype=np.float32)
    return Input("conversation", audio, reference, "hello there bonjour", turns)


def test_der_counts_silence_and_overlap_over_the_whole_recording() -> None:
    reference = annotation((0.0, 4.0, "a"), (2.0, 6.0, "b"))
    assert scored_der(reference, annotation((0.0, 4.0, "x"), (2.0, 6.0, "y")), 10.0) == 0.0
    # b's 4 s missed of 8 s of reference speech (overlap scored twice).
    assert scored_der(reference, annotation((0.0, 4.0, "x")), 10.0) == pytest.approx(0.5)
    # 2 s of speech where there is none: false alarm past the reference's end.
    hypothesis = annotation((0.0, 4.0, "x"), (2.0, 6.0, "y"), (8.0, 10.0, "x"))
    assert scored_der(reference, hypothesis, 10.0) == pytest.approx(0.25)
    # A collar forgives the boundaries: 0.5 s on each side of each.
    shifted = annotation((0.0, 4.4, "x"), (2.0, 6.0, "y"))
    assert scored_der(reference, shifted, 10.0) > 0
    assert scored_der(reference, shifted, 10.0, collar=0.5) == 0.0


def test_wer_per_language_takes_the_words_inside_its_turns() -> None:
    source = conversation()
    words = [(0.5, 1.0, " hello"), (1.5, 2.0, " there"), (5.5, 6.0, " bonsoir")]
    assert wer_of(source, "", words) == "en 0.0 %, fr 100.0 %"
    # A word whose middle falls between the turns counts for neither language.
    assert wer_of(source, "", [*words[:2], (4.2, 4.8, " bonjour")]) == "en 0.0 %, fr 100.0 %"


def test_wer_of_a_single_transcript_and_of_none() -> None:
    audio = np.zeros(SAMPLE_RATE, dtype=np.float32)
    source = Input("sample", audio, Annotation(), "one two three four")
    assert wer_of(source, "one two three", []) == "25.0 %"
    assert wer_of(Input("meeting", audio, Annotation()), "anything", []).startswith("-")


def test_a_cut_input_keeps_the_words_of_the_turns_that_end_in_it() -> None:
    part = cut(conversation(), 6.0)
    assert part.seconds == 6.0
    assert part.turns == (conversation().turns[0],)
    assert part.transcript == "hello there"
    # Who spoke is kept up to the cut, a turn cut short included; its words are not.
    assert part.reference.get_timeline().extent() == Segment(0.0, 6.0)
    # The language whose turns were all cut off is no longer scored.
    assert wer_of(part, "", [(0.5, 1.0, " hello"), (1.5, 2.0, " there")]) == "en 0.0 %"
