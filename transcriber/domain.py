"""The transcriber's domain types and the engine interface the servicer depends on.

The servicer converts protobuf to the contract's dataclasses and back; engines
(the real faster-whisper one, or a fake in tests) only see those.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from whospoke.common.audio import Samples
from whospoke.contract.transcription import (
    LanguageShare,
    Segment,
    SpeechWarning,
    TranscriptionOptions,
)


@dataclass(frozen=True)
class Transcribed:
    """The text of the first `seconds` of the stream has all been yielded.

    Carries its value because the servicer sends it later, from the event loop,
    while the worker thread may already be decoding further.
    """

    seconds: float


TranscriptionItem = Segment | SpeechWarning | Transcribed
"""What a session's `run` yields: a segment, a warning about speech without text, or
how far the text now reaches."""


@dataclass(frozen=True)
class EngineInfo:
    model: str
    device: str
    device_index: int
    compute_type: str
    multilingual: bool
    languages: tuple[str, ...] = field(default=())
    cpu_threads: int = 0


class TranscriptionSession(Protocol):
    """One stream's state. `push` runs on the event loop, `run` in a worker thread."""

    @property
    def received_seconds(self) -> float: ...

    @property
    def transcribed_seconds(self) -> float: ...

    @property
    def buffered_seconds(self) -> float:
        """Audio received but not yet transcribed (what backpressure bounds)."""
        ...

    @property
    def language(self) -> tuple[str, float]:
        """Language in use (the most spoken one when multilingual) and its probability
        ("" before it is known)."""
        ...

    @property
    def languages(self) -> list[LanguageShare]:
        """Seconds of segments per language sent so far, most first."""
        ...

    def push(self, samples: Samples) -> None: ...

    def run(self, final: bool, stop: threading.Event) -> Iterator[TranscriptionItem]:
        """Transcribe every piece of the buffer that is ready; all of it when final.

        Yields each segment as soon as the model produces it (and it has been
        checked), a warning for speech left without text as soon as that is
        decided, and progress markers; returns early when `stop` is set.
        """
        ...


class TranscriptionEngine(Protocol):
    """A loaded (or loading) speech-to-text model."""

    @property
    def ready(self) -> bool: ...

    def load(self) -> None:
        """Load the model; blocking, called once from a worker thread."""
        ...

    def info(self) -> EngineInfo: ...

    def validate(self, options: TranscriptionOptions) -> None:
        """Raise InvalidArgument when the model cannot honour `options`."""
        ...

    def open_session(self, options: TranscriptionOptions) -> TranscriptionSession: ...
