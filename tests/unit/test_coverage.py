"""Speech left without text: holes in the coverage, and the review that recovers or warns.

The review's decoder is a fake that returns scripted segments per span, so each
path (recovered, dropped as doubtful, no text, loop re-decoded or cut) is checked
without a model.
"""

from __future__ import annotations

from transcriber.coverage import MIN_GAP, VAD_PAD, Span, holes, speech, text_spans
from transcriber.review import Item, PieceReview, doubt
from whospoke.contract.transcription import Segment, SpeechWarning, Word


def said(
    text: str,
    start: float,
    step: float = 0.4,
    avg_logprob: float = 0.0,
    no_speech_prob: float = 0.0,
) -> Segment:
    """A segment whose words follow each other every `step` seconds from `start`."""
    words = tuple(
        Word(start + i * step, start + (i + 1) * step, " " + w, 0.9)
        for i, w in enumerate(text.split())
    )
    text = "".join(w.text for w in words)
    return Segment(0, start, words[-1].end, text, words, avg_logprob, no_speech_prob)


class ScriptedDecoder:
    """Answers `decode(span)` from a script keyed by the span's rounded start."""

    def __init__(self, script: dict[float, list[Segment]] | None = None) -> None:
        self.script = script or {}
        self.calls: list[Span] = []

    def __call__(self, span: Span) -> list[Segment]:
        self.calls.append(span)
        return self.script.get(round(span.start, 1), [])


def run(review: PieceReview, segments: list[Segment], end: float) -> list[Item]:
    out: list[Item] = []
    for segment in segments:
        out += review.add(segment)
    return out + review.finish(end)


def texts(items: list[Item]) -> list[str]:
    return [i.text for i in items if isinstance(i, Segment)]


def warnings(items: list[Item]) -> list[SpeechWarning]:
    return [i for i in items if isinstance(i, SpeechWarning)]


def test_speech_is_the_region_less_the_vad_padding() -> None:
    assert speech(Span(10.0, 15.0)) == Span(10.0 + VAD_PAD, 15.0 - VAD_PAD)
    short = speech(Span(0.0, 0.8))
    assert short.start < short.end  # a short region keeps some speech


def test_text_spans_are_words_or_the_whole_untimed_segment() -> None:
    assert text_spans(said("a b", 1.0)) == [Span(1.0, 1.4), Span(1.4, 1.8)]
    assert text_spans(Segment(0, 2.0, 5.0, " untimed")) == [Span(2.0, 5.0)]
    assert text_spans(Segment(0, 2.0, 5.0, " ")) == []


def test_fully_transcribed_speech_has_no_hole() -> None:
    segment = said("one two three four five six seven eight nine ten", 1.0)
    spans = [speech(Span(0.6, 5.4))]
    assert holes(spans, text_spans(segment), 0.0, 10.0) == []


def test_pauses_inside_a_region_are_not_holes() -> None:
    covered = [Span(1.0, 2.0), Span(2.9, 4.0)]  # a 0.9 s pause: VAD keeps one region
    assert holes([Span(1.0, 4.0)], covered, 0.0, 10.0) == []


def test_a_missing_utterance_is_a_hole_and_a_missing_word_is_not() -> None:
    covered = [Span(1.0, 5.0), Span(6.9, 8.0)]  # 1.9 s between words: 0.9 s uncovered
    assert holes([Span(1.0, 8.0)], covered, 0.0, 10.0) == []
    found = holes([Span(1.0, 5.0), Span(6.0, 13.0)], [Span(1.0, 5.0)], 0.0, 20.0)
    assert found == [Span(6.0, 13.0)]


def test_blips_shorter_than_the_minimum_are_ignored() -> None:
    assert holes([Span(3.0, 3.0 + MIN_GAP * 0.9)], [], 0.0, 10.0) == []
    assert holes([Span(3.0, 3.0 + MIN_GAP)], [], 0.0, 10.0) == [Span(3.0, 3.0 + MIN_GAP)]


def test_holes_are_looked_for_only_within_the_bounds() -> None:
    assert holes([Span(0.0, 10.0)], [], 4.0, 6.0) == [Span(4.0, 6.0)]
    assert holes([Span(0.0, 10.0)], [], 4.0, 4.5) == []


def test_doubt_names_the_filter() -> None:
    assert doubt(said("fine", 0.0, avg_logprob=-0.3, no_speech_prob=0.1)) is None
    assert "no_speech_prob 0.70" in (doubt(said("x", 0.0, no_speech_prob=0.7)) or "")
    assert "avg_logprob -1.40" in (doubt(said("x", 0.0, avg_logprob=-1.4)) or "")


def test_a_dropped_utterance_is_recovered_in_time_order() -> None:
    """Issue 19: the window's text stopped before the French prompt (29-36.6 s)."""
    first = said("please press one to mute", 6.6)
    later = said("to activate press one", 37.3)
    decoder = ScriptedDecoder({29.4: [said("leave your message after the beep", 29.4, 1.1)]})
    review = PieceReview([Span(6.2, 9.0), Span(29.0, 36.6), Span(36.9, 39.2)], decoder)
    items = run(review, [first, later], 40.0)
    assert texts(items) == [first.text, " leave your message after the beep", later.text]
    assert warnings(items) == []
    assert decoder.calls == [Span(29.4, 36.2)]


def test_what_stays_lost_is_named_with_its_reason() -> None:
    decoder = ScriptedDecoder(
        {
            10.4: [said("thanks for watching", 10.4, avg_logprob=-1.4, no_speech_prob=0.2)],
            30.4: [],
        }
    )
    review = PieceReview([Span(10.0, 14.0), Span(30.0, 34.0)], decoder)
    items = run(review, [], 40.0)
    low, none = warnings(items)
    assert (low.code, low.start, low.end) == ("low_confidence", 10.4, 13.6)
    assert "avg_logprob -1.40 is below -1.0" in low.message
    assert "thanks for watching" in low.message
    assert (none.code, none.start, none.end) == ("no_text", 30.4, 33.6)
    assert texts(items) == []


def test_holes_are_decided_when_the_text_after_them_arrives() -> None:
    review = PieceReview([Span(0.0, 4.0), Span(10.0, 14.0)], ScriptedDecoder())
    before = review.add(said("the second utterance", 10.4, step=1.0))
    assert [w.code for w in warnings(before)] == ["no_text"]
    assert warnings(before)[0].end <= 10.4
    assert review.finish(20.0) == []  # decided once only


def test_a_loop_that_decoding_again_removes_is_replaced() -> None:
    looping = said("go to the menu go to the menu go to the menu", 5.0)
    clean = said("go to the main menu", 5.0, step=0.9)
    decoder = ScriptedDecoder({5.0: [clean]})
    items = run(PieceReview([Span(4.6, 10.0)], decoder), [looping], 12.0)
    assert texts(items) == [clean.text]
    assert warnings(items) == []


def test_a_loop_that_persists_is_cut_and_named() -> None:
    looping = said("go to the menu go to the menu go to the menu", 5.0)
    decoder = ScriptedDecoder({5.0: [looping]})
    items = run(PieceReview([Span(4.6, 10.0)], decoder), [looping], 12.0)
    assert texts(items) == [" go to the menu"]
    (warning,) = warnings(items)
    assert warning.code == "repetition" and "'go to the menu' 3 times" in warning.message
    assert (warning.start, warning.end) == (looping.words[4].start, looping.words[-1].end)
    assert decoder.calls == [Span(looping.start, looping.end)]  # the cut is not a hole


def test_doubtful_re_decoding_does_not_replace_a_loop() -> None:
    looping = said("go to the menu go to the menu go to the menu", 5.0)
    decoder = ScriptedDecoder({5.0: [said("go to the main menu", 5.0, no_speech_prob=0.9)]})
    items = run(PieceReview([Span(4.6, 10.0)], decoder), [looping], 12.0)
    assert texts(items) == [" go to the menu"]
    assert [w.code for w in warnings(items)] == ["repetition"]


def test_everything_comes_out_in_time_order() -> None:
    decoder = ScriptedDecoder({20.4: [said("recovered words here now", 20.4, 0.8)], 40.4: []})
    review = PieceReview([Span(0.0, 2.4), Span(20.0, 24.0), Span(40.0, 44.0)], decoder)
    items = run(review, [said("one two three four", 0.4), said("later on", 30.0)], 50.0)
    assert [type(i).__name__ for i in items] == ["Segment"] * 3 + ["SpeechWarning"]
    starts = [i.start for i in items]
    assert starts == sorted(starts)
