"""The decoder settings of a stream, and decoding a stretch of a piece on its own."""

from __future__ import annotations

import threading
from typing import Any

from faster_whisper import WhisperModel

from transcriber.batched import converted
from transcriber.coverage import Span
from whospoke.common.audio import SAMPLE_RATE, Samples, seconds
from whospoke.contract.transcription import Segment, TranscriptionOptions

ALONE_PAD = 0.2
"""Seconds of context kept around a stretch decoded again on its own."""


def decoding(options: TranscriptionOptions, language: str) -> dict[str, Any]:
    """The decoder settings every pass of a stream shares.

    By default decoding is deterministic (beam search at temperature 0
    only): faster-whisper's temperature fallback samples at random when a
    window's text repeats or scores low, and then the same file gives
    different text from run to run (seen on the Spanish prompts of issue 19
    and a meeting recording). Loops, the fallback's main target, are handled
    by the review instead, deterministically; on the Asterisk and sample
    references the word error rate is unchanged. A client that asks for a
    temperature above 0 gets sampling at that one temperature (no fallback
    ladder either): its runs differ, by its choice.
    """
    return {
        "language": language or None,
        "task": options.task,
        "beam_size": options.beam_size,
        "word_timestamps": options.word_timestamps,
        "initial_prompt": options.initial_prompt,
        "hotwords": options.hotwords,
        "condition_on_previous_text": False,
        "temperature": options.temperature,
    }


def decode_alone(
    model: WhisperModel,
    settings: dict[str, Any],
    audio: Samples,
    offset: float,
    stop: threading.Event,
    span: Span,
) -> list[Segment]:
    """Decode `span` (absolute seconds) of the piece `audio` (from `offset`) on its own,
    unfiltered.

    A second chance for speech the piece's pass left without text, or turned
    into a loop: a window of its own, and no segment skipped as non-speech,
    so that the review sees what the model makes of it and says why it drops it.
    """
    first = max(0, int((span.start - offset - ALONE_PAD) * SAMPLE_RATE))
    last = min(audio.size, int((span.end - offset + ALONE_PAD) * SAMPLE_RATE))
    if last <= first:
        return []
    segments, _ = model.transcribe(
        audio[first:last], vad_filter=False, no_speech_threshold=None, **settings
    )
    decoded: list[Segment] = []
    for raw in segments:
        if stop.is_set():
            break
        decoded.append(converted(raw, offset + seconds(first), settings["language"] or ""))
    return decoded
