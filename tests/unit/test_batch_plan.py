"""A file's batched decoding: planning several pieces at once, and what each piece holds."""

from __future__ import annotations

import numpy as np

from transcriber.batched import Piece, _sentences
from transcriber.windows import (
    ANALYSIS_SAMPLES,
    KEPT_SILENCE,
    WINDOW_SAMPLES,
    Plan,
    Region,
    batch_span,
    plan_batch,
    plan_window,
)
from whospoke.contract.transcription import Word

S = 16_000


def regions_every(seconds: int, count: int, speech: int = 20) -> list[Region]:
    """`count` regions of `speech` seconds, one starting every `seconds`."""
    return [Region(i * seconds * S, (i * seconds + speech) * S) for i in range(count)]


def test_the_span_holds_a_batch_and_the_region_open_after_it() -> None:
    assert batch_span(1) == max(ANALYSIS_SAMPLES, 3 * WINDOW_SAMPLES)
    assert batch_span(8) == 10 * WINDOW_SAMPLES


def test_a_file_waits_for_a_full_span_then_plans_up_to_the_batch() -> None:
    span = batch_span(4)
    regions = regions_every(25, 8)
    assert plan_batch(regions, span, span, False, True, pieces=4, span=span) == []
    plans = plan_batch(regions, span, span + 1, False, True, pieces=4, span=span)
    assert [p.transcribe for p in plans] == [True] * 4
    # Each region of 20 s is a piece (two would not fit in one window); cuts are relative.
    assert [p.cut for p in plans] == [20 * S] + [25 * S] * 3


def test_the_first_plan_matches_the_single_piece_planner() -> None:
    span = batch_span(4)
    regions = regions_every(12, 14, speech=8)
    single = plan_window(regions, span, span + 1, False, True, live=False, span=span)
    plans = plan_batch(regions, span, span + 1, False, True, pieces=4, span=span)
    assert plans[0] == single


def test_planning_stops_at_the_last_closed_region() -> None:
    span = batch_span(4)
    # Two closed regions, then one still open at the end of the analysed span.
    regions = [Region(0, 20 * S), Region(25 * S, 45 * S), Region(span - 10 * S, span)]
    plans = plan_batch(regions, span, span + 1, False, True, pieces=4, span=span)
    assert sum(p.cut for p in plans) <= span - 10 * S
    assert [p.transcribe for p in plans if p.transcribe] == [True, True]


def test_the_end_of_a_file_plans_everything_left() -> None:
    regions = regions_every(25, 3)
    buffered = 80 * S
    plans = plan_batch(regions, buffered, buffered, True, True, pieces=8, span=batch_span(8))
    assert sum(p.cut for p in plans) == buffered
    assert sum(p.transcribe for p in plans) == 3


def test_silence_between_pieces_is_not_decoded() -> None:
    span = batch_span(2)
    regions = [Region(0, 20 * S), Region(60 * S, 80 * S), Region(120 * S, 140 * S)]
    plans = plan_batch(regions, span, span + 1, False, True, pieces=2, span=span)
    assert plans == [Plan(20 * S, transcribe=True), Plan(60 * S, transcribe=True)]
    # The second piece starts with 40 s of silence, which the decoder never hears.
    second = Piece(np.zeros(60 * S, dtype=np.float32), [Region(40 * S, 60 * S)])
    assert second.speech() == [Region(40 * S, 60 * S)]


def test_a_piece_keeps_short_pauses_and_drops_long_ones() -> None:
    audio = np.zeros(40 * S, dtype=np.float32)
    short = KEPT_SILENCE // 2
    regions = [Region(0, 5 * S), Region(5 * S + short, 10 * S), Region(20 * S, 25 * S)]
    assert Piece(audio, regions).speech() == [Region(0, 10 * S), Region(20 * S, 25 * S)]
    assert Piece(audio, []).speech() == [Region(0, 40 * S)]


def word(start: float, text: str) -> Word:
    return Word(start, start + 0.3, text, 0.9)


def test_words_are_cut_into_segments_at_sentence_ends_and_long_pauses() -> None:
    words = [
        word(0.0, " Hello"),
        word(0.4, " there."),
        word(0.8, " How"),
        word(1.2, " are"),
        word(3.0, " you"),
        word(3.4, " today?"),
        word(3.8, " Fine"),
    ]
    parts = [["".join(w.text for w in part)] for part in _sentences(words)]
    assert parts == [[" Hello there."], [" How are"], [" you today?"], [" Fine"]]
