"""Decoding any file FFmpeg reads to the streams' format, bounded while it decodes.

A compressed file can expand enormously: FLAC stores digital silence in about 13
bytes per 65,535 samples, so a 130 KB file holds ten hours. Decoding therefore
streams frame by frame and stops the moment the decoded duration passes the
caller's limit, whatever the header claims; nothing here ever holds more than one
decoded frame. Error messages name the fault, never the server-side path of the
file being read.
"""

from __future__ import annotations

import io
import logging
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av

from whospoke.common.audio import SAMPLE_RATE, Samples, pcm_to_float
from whospoke.common.errors import Cancelled, InvalidArgument

logger = logging.getLogger(__name__)

Source = str | Path | bytes
"""A file's path, or its bytes."""


class PcmDecoder:
    """Iterate for 16 kHz mono 16-bit PCM blocks of the first audio track.

    `samples` counts what has been produced, and once iteration has started
    `format_name` names the container and `declared_seconds` is the duration its
    header declares (0 when it declares none). Both counters are plain attributes
    written by the iterating thread, so another thread may read them to report
    progress (`decoded_seconds / declared_seconds`); the declared duration is
    only ever an estimate for that, never a limit. Raises InvalidArgument
    (prefixed with `field`) for an undecodable input, a file without audio, or
    audio longer than `max_seconds`; FileNotFoundError passes through so that
    callers can say which resource disappeared. A file damaged or cut short after some audio decoded
    keeps that audio (a warning is logged): an interrupted recording is still
    worth transcribing.
    """

    def __init__(self, source: Source, max_seconds: float = math.inf, field: str = "audio") -> None:
        self._source = source
        self._limit = max_seconds * SAMPLE_RATE
        self._max_seconds = max_seconds
        self._field = field
        self.samples = 0
        self.format_name = ""
        self.declared_seconds = 0.0

    def __iter__(self) -> Iterator[bytes]:
        source = self._source
        target = io.BytesIO(source) if isinstance(source, bytes) else str(source)
        try:
            with av.open(target, mode="r") as container:
                self.format_name = container.format.name
                if not container.streams.audio:
                    raise InvalidArgument(f"{self._field}: the file has no audio track")
                stream = container.streams.audio[0]
                self.declared_seconds = _declared_seconds(container, stream)
                yield from self._decode(container, stream)
        except FileNotFoundError:
            raise
        except av.FFmpegError as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise InvalidArgument(
                f"{self._field}: cannot decode the input ({reason}); "
                "send an audio or video file FFmpeg reads"
            ) from None

    def _decode(self, container: Any, stream: Any) -> Iterator[bytes]:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames, None)
            except av.FFmpegError as exc:
                if self.samples == 0:
                    raise
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                logger.warning(
                    "audio damaged after %d samples, keeping them: %s", self.samples, reason
                )
                frame = None
            for out in resampler.resample(frame):
                yield self._counted(out.to_ndarray().tobytes())
            if frame is None:
                return

    @property
    def decoded_seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    def _counted(self, pcm: bytes) -> bytes:
        self.samples += len(pcm) // 2
        if self.samples > self._limit:
            raise InvalidArgument(
                f"{self._field}: longer than the {self._max_seconds:.0f} s this server accepts "
                "(--max-audio-seconds); split the recording"
            )
        return pcm


def _declared_seconds(container: Any, stream: Any) -> float:
    """The audio track's duration from the header (the container's when the track
    declares none), 0 when neither does."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return float(container.duration / av.time_base)
    return 0.0


def decode_audio(source: Source, max_seconds: float = math.inf) -> Samples:
    """The whole first audio track as float32 samples (for files known to be small)."""
    return pcm_to_float(b"".join(PcmDecoder(source, max_seconds)))


def measure(
    source: Source, max_seconds: float, field: str, stop: threading.Event | None = None
) -> tuple[float, str]:
    """(duration in seconds, container name), found by decoding, never from the header.

    Headers lie (a FLAC may declare 0 samples and hold ten hours), so the duration a
    server enforces limits with must come from the audio itself. Setting `stop`
    ends the decode early with CANCELLED.
    """
    decoder = PcmDecoder(source, max_seconds, field)
    for _ in decoder:
        if stop is not None and stop.is_set():
            raise Cancelled(f"{field}: stopped while decoding")
    return decoder.samples / SAMPLE_RATE, decoder.format_name
