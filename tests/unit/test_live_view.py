"""Provisional speakers of live segments, their updates, and live audio conversion."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.domain import LiveTurns
from orchestrator.live_audio import PcmConverter, PcmFormat
from orchestrator.live_view import LiveView, SpeakerUpdate
from whospoke.common.errors import InvalidArgument
from whospoke.contract.diarization import Turn
from whospoke.contract.transcription import Segment, Word
from whospoke.v1 import orchestrator_pb2 as pb


class Arrived:
    def received_at(self, seconds: float) -> float:
        return 0.0


def segment(start: float, *words: tuple[float, float, str]) -> Segment:
    ws = tuple(Word(s, e, f" {t}", 0.9) for s, e, t in words)
    return Segment(0, start, ws[-1].end, "".join(w.text for w in ws), ws)


A, B = "SPEAKER_00", "SPEAKER_01"


def test_words_past_the_turns_take_the_last_speaker_then_are_corrected() -> None:
    view = LiveView(Arrived())
    assert view.turns_arrived(LiveTurns((Turn(0.0, 2.0, A),), 2.0)) == []
    live = view.segment(segment(0.5, (0.5, 1.0, "hello"), (2.5, 3.0, "there")))
    assert [w.speaker for w in live.segment.words] == [A, A]  # "there": last heard
    assert live.segment.speaker == A and live.index == 0

    updates = view.turns_arrived(LiveTurns((Turn(2.2, 4.0, B),), 4.0))
    assert updates == [SpeakerUpdate(0, A, (A, B))]  # A still speaks most of it (a tie)
    # Settled now: turns past it change nothing, and an unchanged segment gets no update.
    assert view.turns_arrived(LiveTurns((Turn(4.0, 6.0, A),), 6.0)) == []


def test_the_final_turns_update_only_the_segments_they_change() -> None:
    view = LiveView(Arrived())
    view.turns_arrived(LiveTurns((Turn(0.0, 2.0, A), Turn(2.0, 4.0, B)), 4.0))
    view.segment(segment(0.0, (0.2, 0.8, "one")))
    view.segment(segment(2.0, (2.2, 2.8, "two")))
    final = view.final([Turn(0.0, 2.0, A), Turn(2.0, 4.0, A)])
    assert final == [SpeakerUpdate(1, A, (A,), final=True)]


def test_a_segment_without_word_timings_has_a_speaker_and_no_words() -> None:
    view = LiveView(Arrived())
    view.turns_arrived(LiveTurns((Turn(0.0, 3.0, B),), 3.0))
    live = view.segment(Segment(0, 0.5, 2.5, " words", ()))
    assert live.segment.speaker == B and live.segment.words == ()


def test_stereo_48k_floats_become_16k_mono_without_losing_samples() -> None:
    fmt = PcmFormat.from_pb(
        pb.LiveStreamConfig(encoding=pb.PCM_F32LE, sample_rate_hz=48000, channels=2)
    )
    converter = PcmConverter(fmt)
    t = np.arange(48000 * 2) / 48000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype("<f4")
    stereo = np.repeat(tone, 2).tobytes()
    pcm = b"".join(converter.convert(stereo[i : i + 3840]) for i in range(0, len(stereo), 3840))
    pcm += converter.flush()
    samples = np.frombuffer(pcm, "<i2").astype(np.float64) / 32768
    assert abs(len(samples) - 32000) <= 2
    spectrum = np.abs(np.fft.rfft(samples[:16000]))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins: the tone kept its pitch
    assert 0.3 < np.max(np.abs(samples)) < 0.7


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (pb.LiveStreamConfig(sample_rate_hz=16000), "config.encoding"),
        (pb.LiveStreamConfig(encoding=pb.PCM_S16LE, sample_rate_hz=96000), "config.sample_rate"),
        (
            pb.LiveStreamConfig(encoding=pb.PCM_S16LE, sample_rate_hz=16000, channels=6),
            "config.channels",
        ),
    ],
)
def test_formats_outside_what_is_taken_name_their_field(
    config: pb.LiveStreamConfig, field: str
) -> None:
    with pytest.raises(InvalidArgument, match=field):
        PcmFormat.from_pb(config)


def test_a_message_of_partial_frames_is_rejected() -> None:
    fmt = PcmFormat.from_pb(
        pb.LiveStreamConfig(encoding=pb.PCM_S16LE, sample_rate_hz=16000, channels=2)
    )
    with pytest.raises(InvalidArgument, match="whole number of 4-byte frames"):
        PcmConverter(fmt).convert(b"\x00" * 6)
