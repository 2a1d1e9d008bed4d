"""Which words of an open live utterance are sent, and when a decode is due."""

from __future__ import annotations

from transcriber.coverage import Span
from transcriber.early import EarlyTimings, EarlyWords, repeated, sent_part, unsent_spans
from transcriber.windows import Region
from whospoke.common.audio import SAMPLE_RATE
from whospoke.contract.transcription import Segment, Word

SR = SAMPLE_RATE


def segment(*words: tuple[float, float, str]) -> Segment:
    ws = tuple(Word(s, e, t, 0.9) for s, e, t in words)
    return Segment(0, ws[0].start, ws[-1].end, "".join(w.text for w in ws), ws, -0.2, 0.01, 1.2)


SPOKEN = segment(
    (10.0, 10.4, " I"), (10.4, 10.9, " thought,"), (11.0, 11.5, " you"), (11.5, 12.0, " know")
)


def test_words_in_the_context_before_the_floor_are_not_sent_again() -> None:
    part = sent_part(SPOKEN, floor=10.9, until=99.0)
    assert part is not None
    assert [w.text for w in part.words] == [" you", " know"]
    assert (part.start, part.end, part.text) == (11.0, 12.0, " you know")
    assert (part.avg_logprob, part.no_speech_prob) == (SPOKEN.avg_logprob, SPOKEN.no_speech_prob)


def test_a_word_across_the_floor_goes_by_its_middle() -> None:
    # " thought," (10.4-10.9) has its middle at 10.65: sent with a floor at 10.6, not at 10.7.
    across, after = sent_part(SPOKEN, 10.6, 99.0), sent_part(SPOKEN, 10.7, 99.0)
    assert across is not None and across.words[0].text == " thought,"
    assert after is not None and after.words[0].text == " you"


def test_words_ending_in_the_hold_wait() -> None:
    part = sent_part(SPOKEN, floor=0.0, until=11.6)
    assert part is not None and part.text == " I thought, you"
    assert sent_part(SPOKEN, floor=0.0, until=10.3) is None
    assert sent_part(SPOKEN, floor=12.0, until=99.0) is None


def test_a_whole_segment_is_sent_unchanged() -> None:
    assert sent_part(SPOKEN, floor=9.0, until=12.0) is SPOKEN


def test_unsent_spans_are_the_speech_after_the_floor_in_absolute_seconds() -> None:
    regions = [Region(0, SR), Region(2 * SR, 5 * SR)]
    assert unsent_spans(regions, floor=3 * SR, end=4 * SR, offset=100.0) == [Span(103.0, 104.0)]
    assert unsent_spans(regions, floor=SR // 2, end=6 * SR, offset=0.0) == [
        Span(0.5, 1.0),
        Span(2.0, 5.0),
    ]


def test_a_decode_is_due_once_enough_speech_is_unsent_and_not_on_every_chunk() -> None:
    early = EarlyWords(EarlyTimings(pending=2.0, hold=0.8, context=1.5, step=0.5))
    early.timed(0.1)
    speech = [Region(SR // 2, 3 * SR)]
    assert not early.due(speech, buffered=2 * SR, received=2 * SR)  # 1.5 s of speech
    assert early.due(speech, buffered=3 * SR, received=3 * SR)  # 2.5 s
    early.tried = 3 * SR
    assert not early.due(speech, buffered=3 * SR + SR // 10, received=3 * SR + SR // 10)
    assert early.due(speech, buffered=3 * SR + SR // 2, received=3 * SR + SR // 2)
    assert not early.due([], buffered=10 * SR, received=10 * SR)


def test_the_next_decode_starts_a_context_before_the_floor() -> None:
    early = EarlyWords(EarlyTimings(context=1.5))
    early.floor = 4 * SR
    assert early.start() == int(2.5 * SR)
    early.dropped(early.start())
    assert early.floor == int(1.5 * SR) and early.start() == 0
    early.dropped(10 * SR)
    assert early.floor == 0


def test_words_go_early_only_while_decodes_are_quick() -> None:
    """A CPU core takes 1.7 s per Whisper base pass: decoding that often falls behind."""
    early = EarlyWords(EarlyTimings(max_decode=0.5))
    speech = [Region(0, 5 * SR)]
    assert not early.fast and not early.due(speech, 5 * SR, 5 * SR)  # nothing timed yet
    early.timed(1.7)
    assert not early.fast and not early.due(speech, 5 * SR, 5 * SR)
    for _ in range(6):
        early.timed(0.1)  # the mean follows the recent decodes
    assert early.fast and early.due(speech, 5 * SR, 5 * SR)


def test_the_last_word_sent_is_not_sent_again_when_its_time_moves() -> None:
    again = segment((11.45, 11.9, " know"), (12.0, 12.4, " I"), (12.4, 12.8, " heard"))
    part = repeated(again, sent=("thought", "you", "know"))
    assert part is not None and part.text == " I heard" and part.start == 12.0
    assert repeated(again, sent=("heard",)) is again  # only a repeat at the start counts
    assert repeated(segment((11.45, 11.9, " Know.")), sent=("know",)) is None


def test_parts_of_one_decode_remember_what_was_sent() -> None:
    early = EarlyWords(EarlyTimings())
    first = list(early.parts([SPOKEN], floor=0.0, until=11.6))
    assert [p.text for p in first] == [" I thought, you"]
    assert early.sent == ("i", "thought", "you")
    # The next decode hears " you" again, timed a little later; it is not repeated.
    later = segment((11.2, 11.5, " you"), (11.5, 12.0, " know"), (12.1, 12.5, " this"))
    assert [p.text for p in early.parts([later], floor=11.0, until=99.0)] == [" know this"]


def test_an_utterance_after_a_pause_may_start_with_the_words_the_last_one_ended_with() -> None:
    early = EarlyWords(EarlyTimings())
    list(early.parts([SPOKEN], floor=0.0, until=99.0))
    early.floor = 12 * SR
    early.dropped(early.start())  # context kept: the last words may come back
    assert early.sent == ("i", "thought", "you", "know")
    early.dropped(early.floor)  # the utterance closed and was dropped
    again = segment((20.0, 20.5, " you"), (20.5, 21.0, " know"))
    assert [p.text for p in early.parts([again], floor=0.0, until=99.0)] == [" you know"]
