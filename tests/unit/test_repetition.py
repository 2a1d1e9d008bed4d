"""Finding Whisper's repetition loops in a segment and cutting them off (pure functions)."""

from __future__ import annotations

import pytest

from transcriber.repetition import Loop, cut_loop, find_loop, loop_in, repeated_phrase
from whospoke.contract.transcription import Segment, Word


def words_of(text: str) -> list[str]:
    return text.split()


def timed(text: str, start: float = 10.0, step: float = 0.5) -> Segment:
    """A segment with one word every `step` seconds, Whisper-style leading spaces."""
    words = tuple(
        Word(start + i * step, start + i * step + step * 0.8, " " + w, 0.9)
        for i, w in enumerate(text.split())
    )
    return Segment(0, start, words[-1].end, "".join(w.text for w in words), words)


@pytest.mark.parametrize(
    "text",
    [
        "Please press one to mute or unmute yourself, two to lock or unlock the conference",
        "four or six to decrease or increase the conference volume, seven or nine to "
        "decrease or increase your volume",  # a phrase repeated with words in between
        "no, no, no, I said New York, New York",  # short repeats are speech
        "thank you thank you",
        "very very very good",
        "",
    ],
)
def test_speech_is_not_a_loop(text: str) -> None:
    assert find_loop(words_of(text)) is None


def test_the_loop_of_issue_19_is_found_though_cut_off_mid_phrase() -> None:
    tail = "increase your volume and increase your volume and increase your volume"
    words = words_of("or 8 for more options or " + tail)
    loop = find_loop(words)
    assert loop == Loop(start=10, end=17, size=4)
    assert words[loop.start - loop.size : loop.start] == ["increase", "your", "volume", "and"]
    assert loop.repeats == 3


@pytest.mark.parametrize(
    "text",
    [
        "or increase your volume and increase your volume",  # a phrase twice: speech
        "one more time one more time",
        "I want to I want to go",  # a restart
        "thank you thank you thank you",
    ],
)
def test_a_phrase_said_twice_or_a_short_one_thrice_is_speech(text: str) -> None:
    assert find_loop(words_of(text)) is None


def test_a_phrase_three_times_is_a_loop_whatever_the_case_and_punctuation() -> None:
    words = words_of("Thank you very much and thank you very much and THANK YOU very much.")
    loop = find_loop(words)
    assert loop is not None
    assert (loop.size, loop.start, loop.end, loop.repeats) == (5, 5, 14, 3)


def test_a_single_word_needs_five_in_a_row() -> None:
    assert find_loop(words_of("the the the the")) is None
    assert find_loop(words_of("and the the the the the end")) == Loop(2, 6, 1)


def test_the_first_loop_is_reported_with_its_longest_extent() -> None:
    words = words_of("a b a b a b a b x c d e c d e c d e")
    assert find_loop(words) == Loop(2, 8, 2)


def test_cutting_keeps_the_first_occurrence_and_the_words_after() -> None:
    segment = timed("go to the menu go to the menu go to the menu now")
    loop = loop_in(segment)
    assert loop is not None and repeated_phrase(segment, loop) == "go to the menu"
    cut, start, end = cut_loop(segment, loop)
    assert cut.text == " go to the menu now"
    assert [w.text for w in cut.words] == [" go", " to", " the", " menu", " now"]
    assert (start, end) == (segment.words[4].start, segment.words[11].end)
    assert cut.end == segment.end  # the segment still ends with "now"
    assert loop_in(cut) is None


def test_a_loop_running_to_the_end_shortens_the_segment() -> None:
    segment = timed("or increase your volume and increase your volume and increase your")
    loop = loop_in(segment)
    assert loop is not None
    cut, start, end = cut_loop(segment, loop)
    assert cut.text == " or increase your volume and"
    assert cut.end == segment.words[4].end
    assert end == segment.end and start == segment.words[5].start


def test_untimed_segments_are_cut_by_words_and_timed_in_proportion() -> None:
    segment = Segment(0, 0.0, 12.0, " one two three one two three one two three four five six")
    loop = loop_in(segment)
    assert loop == Loop(3, 9, 3)
    cut, start, end = cut_loop(segment, loop)
    assert cut.text == " one two three four five six"
    assert (start, end) == (3.0, 9.0)
    assert cut.end == 12.0
