"""Where speech is in a stream's buffer: Silero VAD as faster-whisper runs it, per stream kind."""

from __future__ import annotations

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from transcriber.windows import Region
from whospoke.common.audio import SAMPLE_RATE, Samples

PLANNING_VAD = VadOptions(min_silence_duration_ms=1000, max_speech_duration_s=28)
"""A file's: a region closes after 1 s of silence; long ones split before 30 s."""
LIVE_VAD = VadOptions(min_silence_duration_ms=500, max_speech_duration_s=6)
"""A live stream's when it waits for pauses: speech rarely pauses a full second, so
regions close after 0.5 s of silence and split past 6 s (with a file's settings,
sample.wav's live segments came 12 s late, p50)."""
EARLY_VAD = VadOptions(min_silence_duration_ms=500, max_speech_duration_s=24)
"""A live stream's when words are sent early (transcriber/early.py): no split needed for
latency, so a region splits only where its window would overflow (24 s and the context
before it fit in 30)."""
SPEECH_PAD = PLANNING_VAD.speech_pad_ms * SAMPLE_RATE // 1000
"""Samples of padding VAD adds after the last speech frame of a region."""
END_PADDING = np.zeros(int(1.5 * SAMPLE_RATE), dtype=np.float32)
"""Silence appended (for VAD only) at the end of a stream so its last region closes."""


def speech_regions(buffer: Samples, span: int, final: bool, vad: VadOptions) -> list[Region]:
    """Speech regions of the first `span` samples of the buffer.

    At the end of the stream the audio is padded with silence for VAD, so the
    last region ends where its speech does rather than at the end of the audio.
    """
    analysed = buffer[:span]
    closing = final and buffer.size <= span
    padded = np.concatenate([analysed, END_PADDING]) if closing else analysed
    return [
        Region(r["start"], min(r["end"], analysed.size))
        for r in get_speech_timestamps(padded, vad)
        if r["start"] < analysed.size
    ]
