"""Real speech with references that ships inside pyannote.audio's wheel.

`sample.wav` (30 s, two speakers) with `sample.rttm` (who spoke when) and
`sample.stm` (what was said): used by the demo, tests and benchmarks, found
without importing pyannote.audio (which is slow and loads torch).
"""

from __future__ import annotations

from pathlib import Path

from whospoke.common.models import package_dir


def sample_dir() -> Path:
    return package_dir("pyannote.audio") / "sample"


def sample_path() -> Path:
    return sample_dir() / "sample.wav"


def sample_transcript() -> str:
    """The reference words of sample.wav, from its STM file."""
    words = []
    for line in (sample_dir() / "sample.stm").read_text().splitlines():
        parts = line.split(maxsplit=6)
        if len(parts) == 7 and not line.startswith(";;"):
            words.append(parts[6])
    return " ".join(words)
