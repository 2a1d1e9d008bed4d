"""Audio chunks: PCM conversion, contiguity checks, chunking and decoding files."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from whospoke.common.audio import (
    SAMPLE_RATE,
    ChunkReader,
    float_to_pcm,
    iter_chunks,
    pcm_to_float,
)
from whospoke.common.decode import decode_audio
from whospoke.common.errors import InvalidArgument
from whospoke.v1 import audio_pb2


def test_pcm_round_trip_is_exact_to_one_step() -> None:
    samples = np.linspace(-1, 1, 1001, dtype=np.float32)
    back = pcm_to_float(float_to_pcm(samples))
    assert np.max(np.abs(back - samples)) <= 1 / 32768


def test_out_of_range_samples_are_clipped() -> None:
    back = pcm_to_float(float_to_pcm(np.array([2.0, -2.0], dtype=np.float32)))
    assert back[0] == pytest.approx(32767 / 32768) and back[1] == -1.0


def test_chunks_are_contiguous_and_reassemble(sample_audio: np.ndarray) -> None:
    reader = ChunkReader()
    parts = [reader.read(chunk) for chunk in iter_chunks(sample_audio, 0.7)]
    joined = np.concatenate(parts)
    assert joined.size == sample_audio.size
    assert reader.received_seconds == pytest.approx(sample_audio.size / SAMPLE_RATE)


@pytest.mark.parametrize(
    ("offset", "kind"), [(SAMPLE_RATE + 5, "gap"), (SAMPLE_RATE - 5, "overlap")]
)
def test_gap_or_overlap_names_the_field(offset: int, kind: str) -> None:
    reader = ChunkReader("audio")
    reader.read(audio_pb2.AudioChunk(pcm_s16le=b"\0\0" * SAMPLE_RATE, offset_samples=0))
    with pytest.raises(InvalidArgument, match=f"audio.offset_samples: {kind}"):
        reader.read(audio_pb2.AudioChunk(pcm_s16le=b"\0\0", offset_samples=offset))


def test_odd_byte_count_is_rejected() -> None:
    with pytest.raises(InvalidArgument, match=r"audio\.pcm_s16le: odd length 3"):
        ChunkReader().read(audio_pb2.AudioChunk(pcm_s16le=b"abc"))


def test_decodes_8khz_stereo_wav_to_16khz_mono(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    t = np.arange(8000 * 2) / 8000
    tone = (np.sin(2 * np.pi * 440 * t) * 16000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(np.repeat(tone, 2).tobytes())
    audio = decode_audio(path)
    assert abs(audio.size - 2 * SAMPLE_RATE) < 200
    assert 0.3 < float(np.abs(audio).max()) < 0.6


def test_garbage_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="audio: cannot decode"):
        decode_audio(b"this is not audio at all" * 100)
