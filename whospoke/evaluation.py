"""Reference audio and scoring shared by the tests and the benchmarks.

- pyannote's `sample.wav` (30 s, two speakers) with `sample.rttm` (who spoke when)
  and `sample.stm` (what was said), found without importing pyannote.audio.
- Debian's Asterisk prompts (`asterisk-core-sounds-{en,fr,es}` with their `-wav`
  packages): real recorded speech in three languages by three different voices,
  with the transcript of every prompt. `asterisk_recording` concatenates a fixed
  selection into one recording and returns its reference text.
- Word error rate with one normalisation for every language.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whospoke.common.audio import SAMPLE_RATE, Samples
from whospoke.common.decode import decode_audio
from whospoke.common.models import package_dir

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds")
ASTERISK_DOCS = Path("/usr/share/doc")


def sample_dir() -> Path:
    return package_dir("pyannote.audio") / "sample"


def sample_path() -> Path:
    return sample_dir() / "sample.wav"


def sample_transcript() -> str:
    """The reference words of sample.wav, from its STM file."""
    return " ".join(line.split(maxsplit=5)[5] for line in _lines(sample_dir() / "sample.stm"))


def sample_turns() -> list[tuple[float, float, str]]:
    """(start, end, speaker) of every reference turn of sample.wav, from its RTTM."""
    turns = []
    for line in _lines(sample_dir() / "sample.rttm"):
        fields = line.split()
        start, duration = float(fields[3]), float(fields[4])
        turns.append((start, start + duration, fields[7]))
    return turns


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class Recording:
    audio: Samples
    transcript: str
    prompts: tuple[str, ...]


def asterisk_available(language: str) -> bool:
    return (ASTERISK_SOUNDS / language).is_dir() and _asterisk_index(language).is_file()


def _asterisk_index(language: str) -> Path:
    return ASTERISK_DOCS / f"asterisk-core-sounds-{language}" / f"core-sounds-{language}.txt.gz"


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str
    audio: Samples


def asterisk_prompts(language: str, count: int = 12, min_words: int = 6) -> list[Prompt]:
    """`count` prompts of at least `min_words` words, in name order (deterministic)."""
    prompts: list[tuple[str, str]] = []
    with gzip.open(_asterisk_index(language), "rt", encoding="utf-8", errors="replace") as index:
        for line in index:
            name, sep, text = line.partition(":")
            text = text.strip()
            if not sep or line.startswith(";") or "[" in text or len(text.split()) < min_words:
                continue
            wav = ASTERISK_SOUNDS / language / f"{name.strip()}.wav"
            if wav.is_file():
                prompts.append((name.strip(), text))
    return [
        Prompt(name, text, decode_audio(ASTERISK_SOUNDS / language / f"{name}.wav"))
        for name, text in sorted(prompts)[:count]
    ]


def asterisk_recording(
    language: str, count: int = 12, min_words: int = 6, gap_seconds: float = 1.5
) -> Recording:
    """`count` prompts of at least `min_words` words, in name order, joined by silences.

    Deterministic for a given package version, so figures are comparable between runs.
    """
    chosen = asterisk_prompts(language, count, min_words)
    gap = np.zeros(int(gap_seconds * SAMPLE_RATE), dtype=np.float32)
    parts: list[Samples] = [gap]
    for prompt in chosen:
        parts += [prompt.audio, gap]
    return Recording(
        audio=np.concatenate(parts),
        transcript=" ".join(p.text for p in chosen),
        prompts=tuple(p.name for p in chosen),
    )


NUMBER_WORDS = {
    "en": "zero one two three four five six seven eight nine ten",
    "fr": "zero un deux trois quatre cinq six sept huit neuf dix",
    "es": "cero uno dos tres cuatro cinco seis siete ocho nueve diez",
}
"""Digits Whisper writes where the reference spells the number (accents removed)."""


def normalise(text: str, language: str = "en") -> str:
    """Lower case, no accents, no punctuation, small numbers spelled: fair across languages."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = re.sub(r"[^\w\s']|_", " ", plain).replace("'", " ").split()
    spelled = NUMBER_WORDS.get(language, NUMBER_WORDS["en"]).split()
    return " ".join(spelled[int(w)] if w.isdigit() and int(w) <= 10 else w for w in words)


def word_error_rate(reference: str, hypothesis: str, language: str = "en") -> float:
    """WER of normalised texts (jiwer)."""
    import jiwer

    return float(jiwer.wer(normalise(reference, language), normalise(hypothesis, language)))
