"""Online diarization: centroid tracking of window speakers and provisional turns with latency."""

from __future__ import annotations

import numpy as np

from diarizer.online import CentroidTracker, LiveTurns, OnlineDiarizer
from whospoke.contract.diarization import (
    ProvisionalTurns,
    Turn,
    live_turns_from_pb,
    live_turns_to_pb,
    turn_to_pb,
)
from whospoke.v1 import diarizer_pb2 as pb

STEP = 0.1
"""Frame step in these tests: 100 frames = a 10 s window."""
ANNA, BEN, CLEO = np.eye(4)[0], np.eye(4)[1], np.eye(4)[2]


def window(*spans: tuple[int, int, int], frames: int = 100) -> np.ndarray:
    out = np.zeros((frames, 3), dtype=np.uint8)
    for speaker, start, end in spans:
        out[start:end, speaker] = 1
    return out


def vectors(*voices: np.ndarray) -> np.ndarray:
    out = np.full((3, 4), np.nan)
    for i, voice in enumerate(voices):
        out[i] = voice
    return out


def test_the_same_voice_keeps_its_label_across_windows_and_local_slots() -> None:
    tracker = CentroidTracker(min_update_frames=10)
    first = tracker.assign(window((0, 0, 50), (1, 50, 100)), vectors(ANNA, BEN))
    second = tracker.assign(window((0, 0, 50), (1, 50, 100)), vectors(BEN + 0.1 * ANNA, ANNA))
    assert first.tolist() == [0, 1, -1]
    assert second.tolist() == [1, 0, -1]


def test_a_short_unknown_voice_does_not_start_a_speaker() -> None:
    tracker = CentroidTracker(min_update_frames=10)
    tracker.assign(window((0, 0, 50)), vectors(ANNA))
    # a new voice heard for 5 frames goes to the nearest free speaker, if any
    labels = tracker.assign(window((0, 0, 50), (1, 60, 65)), vectors(ANNA, CLEO))
    assert labels.tolist() == [0, -1, -1] and len(tracker.sums) == 1
    labels = tracker.assign(window((0, 0, 50), (1, 60, 90)), vectors(ANNA, CLEO))
    assert labels.tolist() == [0, 1, -1] and len(tracker.sums) == 2


def test_max_speakers_caps_the_speakers_started() -> None:
    tracker = CentroidTracker(min_update_frames=10, max_speakers=1)
    tracker.assign(window((0, 0, 50)), vectors(ANNA))
    labels = tracker.assign(window((0, 0, 40), (1, 50, 100)), vectors(ANNA, BEN))
    assert labels.tolist() == [0, -1, -1] and len(tracker.sums) == 1


def test_turns_wait_for_the_latency_and_are_sent_once() -> None:
    turns = LiveTurns(frame_step=STEP, frame_offset=0.0, latency=2.0)
    turns.add(0.0, window((0, 0, 50), (1, 50, 100)), np.array([0, 1, -1]))
    early, alone = turns.emit(analysed=10.0)
    assert alone == early  # nobody overlaps
    assert [(t.start, round(t.end, 6), t.speaker) for t in early] == [
        (0.0, 5.0, "SPEAKER_00"),
        (5.0, 8.0, "SPEAKER_01"),
    ]
    assert turns.emit(analysed=10.0) == ([], [])
    turns.add(1.0, window((0, 40, 90)), np.array([1, -1, -1]))  # 5-10 s again, then to 10 s
    later, _ = turns.emit(analysed=11.0)
    assert [(t.start, round(t.end, 6)) for t in later] == [(8.0, 9.0)]
    rest, _ = turns.emit(analysed=0.0, final=True)
    assert [(t.start, round(t.end, 6), t.speaker) for t in rest] == [(9.0, 10.0, "SPEAKER_01")]
    assert turns.emitted_seconds == 11.0


def test_a_frame_takes_the_speaker_most_windows_agree_on() -> None:
    turns = LiveTurns(frame_step=STEP, frame_offset=0.0, latency=0.0)
    turns.add(0.0, window((0, 0, 100)), np.array([0, -1, -1]))
    turns.add(0.0, window((0, 0, 100)), np.array([1, -1, -1]))
    turns.add(0.0, window((0, 0, 30)), np.array([1, -1, -1]))
    found, alone = turns.emit(analysed=10.0)
    assert found == alone
    assert [(t.start, round(t.end, 6), t.speaker) for t in found] == [
        (0.0, 3.0, "SPEAKER_01"),
        (3.0, 10.0, "SPEAKER_00"),
    ]


def test_overlapping_speech_keeps_both_speakers_and_the_exclusive_turns_the_louder() -> None:
    """Two windows hear Anna throughout and Ben from 4 to 6 s: two local speakers at once
    there, so both are sent; the exclusive turns keep Anna, whose mean activity is higher
    (a third window hears only her)."""
    turns = LiveTurns(frame_step=STEP, frame_offset=0.0, latency=0.0)
    for _ in range(2):
        turns.add(0.0, window((0, 0, 100), (1, 40, 60)), np.array([0, 1, -1]))
    turns.add(0.0, window((0, 0, 100)), np.array([0, -1, -1]))
    found, alone = turns.emit(analysed=10.0)
    assert [(t.start, round(t.end, 6), t.speaker) for t in found] == [
        (0.0, 10.0, "SPEAKER_00"),
        (4.0, 6.0, "SPEAKER_01"),
    ]
    assert [(t.start, round(t.end, 6), t.speaker) for t in alone] == [(0.0, 10.0, "SPEAKER_00")]


def test_a_second_voice_heard_by_a_minority_of_windows_is_not_sent() -> None:
    """A mean count of 4/3 speakers rounds to one: Ben, heard by one window in three, is
    left out, as the offline reconstruction leaves him out."""
    turns = LiveTurns(frame_step=STEP, frame_offset=0.0, latency=0.0)
    turns.add(0.0, window((0, 0, 100), (1, 40, 60)), np.array([0, 1, -1]))
    for _ in range(2):
        turns.add(0.0, window((0, 0, 100)), np.array([0, -1, -1]))
    found, _ = turns.emit(analysed=10.0)
    assert {t.speaker for t in found} == {"SPEAKER_00"}


def test_the_online_diarizer_hands_over_each_turn_once() -> None:
    online = OnlineDiarizer(frame_step=STEP, frame_offset=0.0, latency=1.0)
    online.add(0.0, window((0, 0, 100)), vectors(ANNA))
    online.emit(10.0)
    first = online.take()
    assert [t.speaker for t in first.turns] == ["SPEAKER_00"] and first.until == 9.0
    assert first.exclusive_turns == first.turns
    assert online.take() == ProvisionalTurns((), (), 9.0)
    online.emit(10.0, final=True)
    rest = online.take()
    assert [(t.start, round(t.end, 6)) for t in rest.turns] == [(9.0, 10.0)] and rest.until == 10.0


def _tracked_anna_and_ben(margin: float) -> OnlineDiarizer:
    online = OnlineDiarizer(frame_step=STEP, frame_offset=0.0, latency=0.0, run_margin=margin)
    online.add(0.0, window((0, 0, 50), (1, 50, 100)), vectors(ANNA, BEN))
    online.emit(10.0)
    online.take()
    return online


def test_a_run_of_another_voice_inside_one_local_speaker_goes_to_that_voice() -> None:
    """One local speaker carries Anna (0-4 s), then Ben after a pause (6-8 s): its embedding
    is mostly Anna's, but its second run's is Ben's, so that run goes to Ben."""
    online = _tracked_anna_and_ben(margin=0.1)
    activity = window((0, 0, 40), (0, 60, 80))
    speech_runs = np.array([[0, 0, 40], [0, 60, 80]], dtype=np.int32)
    runs_vectors = np.stack([ANNA, BEN + 0.1 * ANNA])
    online.add(10.0, activity, vectors(ANNA + 0.3 * BEN), speech_runs, runs_vectors)
    online.emit(20.0, final=True)
    turns = online.take().turns
    assert [(round(t.start, 6), round(t.end, 6), t.speaker) for t in turns] == [
        (10.0, 14.0, "SPEAKER_00"),
        (16.0, 18.0, "SPEAKER_01"),
    ]


def test_runs_stay_with_their_local_speaker_without_a_margin_to_gain() -> None:
    online = _tracked_anna_and_ben(margin=2.0)  # the setting that never moves a run
    activity = window((0, 0, 40), (0, 60, 80))
    speech_runs = np.array([[0, 0, 40], [0, 60, 80]], dtype=np.int32)
    online.add(10.0, activity, vectors(ANNA), speech_runs, np.stack([ANNA, BEN]))
    online.emit(20.0, final=True)
    assert {t.speaker for t in online.take().turns} == {"SPEAKER_00"}


def test_provisional_turns_cross_the_wire_and_an_older_diarizer_still_attributes_words() -> None:
    anna, ben = Turn(0.0, 4.0, "SPEAKER_00"), Turn(3.0, 4.0, "SPEAKER_01")
    sent = ProvisionalTurns((anna, ben), (anna,), 4.0)
    assert live_turns_from_pb(live_turns_to_pb(sent)) == sent
    # A diarizer that predates `exclusive_turns` sent one speaker at a time in `turns`.
    older = pb.LiveTurns(turns=[turn_to_pb(anna)], until_seconds=4.0)
    assert live_turns_from_pb(older) == ProvisionalTurns((anna,), (anna,), 4.0)
