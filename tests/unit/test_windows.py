"""Where the incremental transcriber cuts its buffer (pure planning logic)."""

from __future__ import annotations

from transcriber.windows import (
    ANALYSIS_SAMPLES,
    FIRST_WINDOW_SAMPLES,
    KEEP_BEFORE_SPEECH,
    PACK_SAMPLES,
    WINDOW_SAMPLES,
    Plan,
    Region,
    plan_window,
)

S = 16_000


def test_empty_buffer_waits() -> None:
    assert plan_window([], 0, 0, final=True, vad_filter=True) is None


def test_open_region_waits_for_more_audio() -> None:
    assert plan_window([Region(0, 5 * S)], 5 * S, 5 * S, final=False, vad_filter=True) is None


def test_closed_region_is_cut_at_its_end() -> None:
    plan = plan_window([Region(0, 4 * S)], 6 * S, 6 * S, final=False, vad_filter=True)
    assert plan == Plan(4 * S, transcribe=True)


def test_closed_regions_are_packed_into_one_window() -> None:
    regions = [
        Region(0, 10 * S),
        Region(12 * S, 22 * S),
        Region(24 * S, 35 * S),
        Region(36 * S, 40 * S),
    ]
    plan = plan_window(regions, 45 * S, 45 * S, final=False, vad_filter=True)
    # 10 + 10 s of speech fit; adding the third region would exceed 30 s of speech.
    assert plan == Plan(22 * S, transcribe=True)


def test_without_vad_the_span_counts_not_the_speech() -> None:
    regions = [Region(0, 5 * S), Region(20 * S, 28 * S), Region(31 * S, 33 * S)]
    plan = plan_window(regions, 40 * S, 40 * S, final=False, vad_filter=False)
    assert plan == Plan(28 * S, transcribe=True)


def test_silence_is_dropped_but_a_second_is_kept() -> None:
    plan = plan_window([], 10 * S, 10 * S, final=False, vad_filter=True)
    assert plan == Plan(10 * S - KEEP_BEFORE_SPEECH, transcribe=False)


def test_silence_before_open_speech_is_dropped() -> None:
    plan = plan_window([Region(8 * S, 12 * S)], 12 * S, 12 * S, final=False, vad_filter=True)
    assert plan == Plan(8 * S - KEEP_BEFORE_SPEECH, transcribe=False)


def test_without_vad_silence_is_transcribed_at_the_window_limit() -> None:
    assert plan_window([], 20 * S, 20 * S, final=False, vad_filter=False) is None
    plan = plan_window([], 31 * S, 31 * S, final=False, vad_filter=False)
    assert plan == Plan(WINDOW_SAMPLES, transcribe=True)


def test_final_flushes_everything() -> None:
    plan = plan_window([Region(0, 5 * S)], 5 * S, 5 * S, final=True, vad_filter=True)
    assert plan == Plan(5 * S, transcribe=True)


def test_final_silence_is_not_transcribed_with_vad() -> None:
    assert plan_window([], 3 * S, 3 * S, final=True, vad_filter=True) == Plan(3 * S, False)


def test_full_analysis_window_always_makes_progress() -> None:
    """An unsplit open region filling the analysis window must not stall the stream."""
    regions = [Region(0, ANALYSIS_SAMPLES)]
    for final in (False, True):
        plan = plan_window(regions, ANALYSIS_SAMPLES, 2 * ANALYSIS_SAMPLES, final, True)
        assert plan == Plan(WINDOW_SAMPLES, transcribe=True)


def test_a_smaller_window_packs_fewer_regions() -> None:
    regions = [Region(s * S, (s + 4) * S) for s in range(0, 40, 5)]
    analysed = 45 * S
    full = plan_window(regions, analysed, analysed, final=False, vad_filter=True)
    first = plan_window(
        regions, analysed, analysed, final=False, vad_filter=True, window=FIRST_WINDOW_SAMPLES
    )
    assert full is not None and first is not None
    # The 1 s silences stay in what Whisper decodes (its VAD removes 2 s or more), so
    # six regions (29 s) fit a window less its margin, and seven (34 s) would not.
    assert (first.cut, full.cut) == (9 * S, 29 * S)


def test_short_silences_count_towards_the_window() -> None:
    """Whisper decodes silences under 2 s with the speech: a piece must fit with them.

    The six-prompt recording of issue 19: 21.8 s then 8 s of speech, 0.5 s apart,
    made a 30.3 s piece whose last 0.3 s became a window of its own, dropped as
    silence; the first window's text stopped before the second utterance.
    """
    regions = [Region(6 * S, int(27.8 * S)), Region(int(28.3 * S), int(36.3 * S))]
    plan = plan_window(regions, 50 * S, 50 * S, final=False, vad_filter=True)
    assert plan == Plan(int(27.8 * S), transcribe=True)


def test_long_silences_do_not_count_towards_the_window() -> None:
    regions = [Region(0, 14 * S), Region(17 * S, 31 * S)]
    plan = plan_window(regions, 50 * S, 50 * S, final=False, vad_filter=True)
    assert plan == Plan(31 * S, transcribe=True)


def test_pieces_leave_a_margin_in_the_window() -> None:
    """29.5 s of speech would fit 30 s, but VAD on the piece alone may find a little more."""
    regions = [Region(0, 20 * S), Region(23 * S, int(32.5 * S))]
    plan = plan_window(regions, 50 * S, 50 * S, final=False, vad_filter=True)
    assert plan == Plan(20 * S, transcribe=True)
    assert PACK_SAMPLES == WINDOW_SAMPLES - S
