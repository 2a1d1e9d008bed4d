"""Words and segments with their speakers: what attribution produces."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AttributedWord:
    start: float
    end: float
    text: str
    probability: float
    speaker: str


@dataclass(frozen=True)
class AttributedSegment:
    start: float
    end: float
    speaker: str
    text: str
    words: tuple[AttributedWord, ...] = ()
    language: str = ""
