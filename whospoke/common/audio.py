"""Audio in the one format every whospoke stream uses: 16 kHz mono PCM.

Converts between `AudioChunk` messages and float32 numpy arrays and checks that the
chunks of a stream are contiguous; files of any container are decoded by
`whospoke.common.decode`.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from whospoke.common.errors import InvalidArgument
from whospoke.v1 import audio_pb2

SAMPLE_RATE = 16_000
"""Samples per second of every stream."""

Samples = npt.NDArray[np.float32]
"""Mono audio at `SAMPLE_RATE`, values in [-1, 1]."""


def seconds(num_samples: int) -> float:
    """Duration in seconds of `num_samples` samples at `SAMPLE_RATE`."""
    return num_samples / SAMPLE_RATE


class ChunkReader:
    """Validates the chunks of one stream and converts them to float32 samples.

    Keeps only the expected next offset, so it is cheap whatever the stream length.
    Every chunk but the last must hold at least `min_samples`: per-message work
    (parsing, waking the model loop, a progress reply) would otherwise let a
    client multiply the server's cost by sending audio a millisecond at a time.
    """

    def __init__(self, field: str = "audio", min_samples: int = 0) -> None:
        self._field = field
        self._min_samples = min_samples
        self._short = -1
        self.received_samples = 0

    def read(self, chunk: audio_pb2.AudioChunk) -> Samples:
        """Return the chunk's samples, or raise InvalidArgument naming the fault."""
        data = chunk.pcm_s16le
        if len(data) % 2:
            raise InvalidArgument(
                f"{self._field}.pcm_s16le: odd length {len(data)} bytes; expected 16-bit samples"
            )
        if self._short >= 0:
            raise InvalidArgument(
                f"{self._field}.pcm_s16le: a chunk of {self._short} samples came before "
                f"another; every chunk but the last must hold at least {self._min_samples} "
                f"samples ({self._min_samples / SAMPLE_RATE:g} s)"
            )
        if chunk.offset_samples != self.received_samples:
            kind = "gap" if chunk.offset_samples > self.received_samples else "overlap"
            raise InvalidArgument(
                f"{self._field}.offset_samples: {kind} in the stream: expected "
                f"{self.received_samples}, got {chunk.offset_samples}"
            )
        samples = pcm_to_float(data)
        if samples.size < self._min_samples:
            self._short = samples.size
        self.received_samples += samples.size
        return samples

    @property
    def received_seconds(self) -> float:
        """Duration of the audio read so far."""
        return seconds(self.received_samples)


def pcm_to_float(data: bytes) -> Samples:
    """16-bit little-endian PCM bytes to float32 samples in [-1, 1)."""
    pcm = np.frombuffer(data, dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def float_to_pcm(samples: Samples) -> bytes:
    """Float samples to 16-bit little-endian PCM bytes, clipping to the range."""
    scaled = np.clip(samples, -1.0, 32767.0 / 32768.0) * 32768.0
    return np.round(scaled).astype("<i2").tobytes()


def wav_bytes(samples: Samples, rate: int = SAMPLE_RATE, channels: int = 1) -> bytes:
    """Float samples (interleaved when `channels` > 1) as a 16-bit PCM WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(float_to_pcm(samples))
    return buffer.getvalue()


def iter_chunks(samples: Samples, chunk_seconds: float = 1.0) -> Iterator[audio_pb2.AudioChunk]:
    """Split audio into contiguous `AudioChunk` messages of `chunk_seconds` each."""
    step = max(1, round(chunk_seconds * SAMPLE_RATE))
    for start in range(0, samples.size, step):
        yield audio_pb2.AudioChunk(
            pcm_s16le=float_to_pcm(samples[start : start + step]), offset_samples=start
        )
