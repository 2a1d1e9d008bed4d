"""A live stream's audio: converted to 16 kHz mono as it arrives, read by both backends.

A client captures audio in whatever its device gives (48 kHz stereo floats from
a browser, 8 kHz from a phone line); `PcmConverter` turns each message into the
16 kHz mono 16-bit PCM the backends take, keeping the resampler's state across
messages so that chunk boundaries leave no clicks or gaps. `LiveAudio` keeps the
converted audio in a spool file, as a file's decoded audio is kept
(`orchestrator.spool`): memory stays flat however long the stream runs, and each
backend reads it at its own pace, waiting only for audio not yet received.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import av
import numpy as np

from orchestrator.spool import BYTES_PER_SAMPLE, read_samples, write_block
from whospoke.common.audio import SAMPLE_RATE
from whospoke.common.errors import InvalidArgument
from whospoke.v1 import audio_pb2
from whospoke.v1 import orchestrator_pb2 as pb

MIN_RATE, MAX_RATE = 8000, 48000
MAX_MESSAGE_SECONDS = 10.0
"""Longest audio one message may carry: a live client sends as it captures."""
ENCODINGS: dict[int, tuple[np.dtype[Any], str]] = {
    pb.PCM_S16LE: (np.dtype("<i2"), "s16"),
    pb.PCM_F32LE: (np.dtype("<f4"), "flt"),
}
"""Each encoding's sample type, and its name as PyAV's frames take it."""


@dataclass(frozen=True)
class PcmFormat:
    """What a client's raw audio is, checked."""

    encoding: int
    rate: int
    channels: int

    @classmethod
    def from_pb(cls, config: pb.LiveStreamConfig) -> PcmFormat:
        """The config's format; INVALID_ARGUMENT naming the field that is wrong. An
        encoded stream's rate and channels come from its own header."""
        if config.encoding == pb.ENCODED_STREAM:
            return cls(config.encoding, 0, 0)
        if config.encoding not in ENCODINGS:
            raise InvalidArgument("config.encoding: give PCM_S16LE, PCM_F32LE or ENCODED_STREAM")
        if not MIN_RATE <= config.sample_rate_hz <= MAX_RATE:
            raise InvalidArgument(
                f"config.sample_rate_hz: {config.sample_rate_hz} Hz is outside "
                f"{MIN_RATE} to {MAX_RATE}"
            )
        channels = config.channels or 1
        if channels not in (1, 2):
            raise InvalidArgument(f"config.channels: {channels}; give 1 or 2")
        return cls(config.encoding, config.sample_rate_hz, channels)

    @property
    def frame_bytes(self) -> int:
        """Bytes of one sample of every channel."""
        return ENCODINGS[self.encoding][0].itemsize * self.channels


class PcmConverter:
    """One stream's raw PCM to 16 kHz mono s16le, message by message."""

    def __init__(self, fmt: PcmFormat) -> None:
        self.format = fmt
        dtype, name = ENCODINGS[fmt.encoding]
        self._dtype, self._name = dtype, name
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        self._pts = 0

    def convert(self, data: bytes) -> bytes:
        """`data` converted; INVALID_ARGUMENT (naming `audio`) for a message that does
        not hold whole frames or holds more than `MAX_MESSAGE_SECONDS`."""
        fmt = self.format
        if len(data) % fmt.frame_bytes:
            raise InvalidArgument(
                f"audio: {len(data)} bytes is not a whole number of {fmt.frame_bytes}-byte "
                "frames (every channel's sample) in the configured encoding"
            )
        frames = len(data) // fmt.frame_bytes
        if frames > MAX_MESSAGE_SECONDS * fmt.rate:
            raise InvalidArgument(
                f"audio: {frames / fmt.rate:.1f} s in one message; send at most "
                f"{MAX_MESSAGE_SECONDS:.0f} s per message, as it is captured"
            )
        if frames == 0:
            return b""
        samples = np.frombuffer(data, dtype=self._dtype).reshape(1, -1)
        layout = "mono" if fmt.channels == 1 else "stereo"
        frame = av.AudioFrame.from_ndarray(samples, format=self._name, layout=layout)
        frame.sample_rate, frame.pts = fmt.rate, self._pts
        self._pts += frames
        return pcm_bytes(self._resampler.resample(frame))

    def flush(self) -> bytes:
        """What the resampler still holds at the end of the stream."""
        return pcm_bytes(self._resampler.resample(None))

    def close(self) -> None:
        """Nothing to release (`StreamDecoder` has a thread to end)."""


@dataclass
class LiveAudio:
    """Audio received so far, in a file; `chunks` may be iterated by several readers at once."""

    path: Path
    max_seconds: float
    """The longest a stream may run; calls to the backends get deadlines for this much."""
    samples: int = 0
    closed: bool = False
    counts: list[int] = field(default_factory=list)
    """Samples received after each message, and (`times`) when it arrived (perf_counter)."""
    times: list[float] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def duration_seconds(self) -> float:
        """Audio received so far."""
        return self.samples / SAMPLE_RATE

    @property
    def expected_seconds(self) -> float:
        return self.max_seconds

    async def append(self, pcm: bytes) -> None:
        """Add converted audio (16 kHz mono s16le) and wake the readers."""
        if pcm:
            await asyncio.to_thread(_append, self.path, pcm)
            self.samples += len(pcm) // BYTES_PER_SAMPLE
        self.counts.append(self.samples)
        self.times.append(time.perf_counter())
        async with self._changed:
            self._changed.notify_all()

    async def close(self) -> None:
        """No more audio: readers end once they have read everything."""
        self.closed = True
        async with self._changed:
            self._changed.notify_all()

    def received_at(self, seconds: float) -> float:
        """When the audio up to `seconds` had arrived (perf_counter); now if not yet."""
        message = bisect_left(self.counts, round(seconds * SAMPLE_RATE))
        return self.times[message] if message < len(self.times) else time.perf_counter()

    async def chunks(self, chunk_seconds: float) -> AsyncIterator[audio_pb2.AudioChunk]:
        """From the start: what has arrived, at most `chunk_seconds` a chunk, as it arrives."""
        size = max(1, round(chunk_seconds * SAMPLE_RATE))
        offset = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(partial(self._past, offset))
            if self.samples <= offset:
                return
            count = min(size, self.samples - offset)
            data = await asyncio.to_thread(read_samples, self.path, offset, count)
            yield audio_pb2.AudioChunk(pcm_s16le=data, offset_samples=offset)
            offset += count

    def _past(self, offset: int) -> bool:
        """Whether there is audio past `offset` to read, or will never be."""
        return self.samples > offset or self.closed

    async def remove(self) -> None:
        await asyncio.to_thread(self.path.unlink, missing_ok=True)


def pcm_bytes(frames: list[Any]) -> bytes:
    """The resampler's s16 mono frames as bytes, as `PcmDecoder` takes them."""
    return b"".join(frame.to_ndarray().tobytes() for frame in frames)


def _append(path: Path, pcm: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # as `spool` does: it may not exist yet
    with path.open("ab") as out:
        write_block(out, pcm)
