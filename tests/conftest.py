"""Shared fixtures: real sample audio, and in-process servers on port 0."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from whospoke.common.audio import Samples
from whospoke.common.decode import decode_audio
from whospoke.evaluation import sample_path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")


@pytest.fixture(scope="session")
def sample_audio() -> Samples:
    """pyannote's sample.wav: 30 s, two speakers, decoded to 16 kHz mono."""
    return decode_audio(sample_path())


async def collect(stream: AsyncIterator[object]) -> list[object]:
    return [item async for item in stream]
