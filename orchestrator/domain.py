"""The orchestrator's domain types and the backend interfaces its job runner depends on.

The gRPC clients (`orchestrator.backends`) turn the services' protobuf streams into
these events; tests inject fakes that produce them directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from whospoke.contract.diarization import DiarizationOptions, DiarizationOutput, Turn
from whospoke.contract.transcription import Segment, SpeechWarning, TranscriptionOptions
from whospoke.v1 import audio_pb2


@dataclass(frozen=True)
class JobOptions:
    """Options of one `Process` call, validated."""

    transcription: TranscriptionOptions
    diarization: DiarizationOptions
    skip_transcription: bool = False
    skip_diarization: bool = False
    require_diarization: bool = False
    model: str = ""
    """Transcriber pool, by the model it serves; "" for the first one."""
    known_speakers: tuple[str, ...] = ()
    """Enrolled voices to recognise, by name."""
    all_known_speakers: bool = False
    """Recognise every enrolled voice."""
    return_embeddings: bool = False
    """Each speaker's embedding in the result."""
    references: tuple[tuple[str, bytes], ...] = ()
    """Voices for this job only: (name, recording)."""

    @property
    def recognises(self) -> bool:
        """Whether known voices are looked for in this job's speakers."""
        return bool(self.known_speakers or self.references) or self.all_known_speakers


@dataclass(frozen=True)
class Progressed:
    """A backend has processed audio up to `seconds`."""

    seconds: float


@dataclass(frozen=True)
class TranscriptDone:
    language: str
    model: str
    device: audio_pb2.DeviceStats | None = None
    """GPU use while transcribing (`backend` set); None when the transcriber ran on the CPU."""


@dataclass(frozen=True)
class DiarizationDone:
    output: DiarizationOutput
    device: audio_pb2.DeviceStats | None = None
    """GPU use while diarizing (`backend` set); None when the diarizer ran on the CPU."""


@dataclass(frozen=True)
class LiveTurns:
    """Provisional turns of a live stream, from where the previous ones ended to `until`."""

    turns: tuple[Turn, ...]
    until: float


TranscriptEvent = Progressed | Segment | SpeechWarning | TranscriptDone
DiarizationEvent = Progressed | DiarizationDone | LiveTurns


@dataclass(frozen=True)
class BackendInfo:
    """What a backend runs, as its `GetInfo` says; empty when it did not answer."""

    models: tuple[str, ...] = ()
    device: str = ""
    """"cpu", or "cuda:N" ("cuda" when the index is unknown)."""
    gpu: audio_pb2.DeviceStats | None = None
    """Its GPU now (`backend` set); None on the CPU or when unknown."""


@dataclass(frozen=True)
class ReplicaHealth:
    """One replica behind a backend address, checked on its own."""

    address: str
    serving: bool
    detail: str = ""


@dataclass(frozen=True)
class BackendHealth:
    name: str
    address: str
    serving: bool
    detail: str = ""
    info: BackendInfo = field(default_factory=BackendInfo)
    pool: str = ""
    """A transcriber pool's model name; "" for the diarizer."""
    replicas: tuple[ReplicaHealth, ...] = ()


class AudioSource(Protocol):
    """A job's decoded audio, which each backend reads at its own pace."""

    @property
    def duration_seconds(self) -> float:
        """A file's length; a live stream's audio received so far."""
        ...

    @property
    def expected_seconds(self) -> float:
        """The length calls get deadlines for: a file's, or the most a live stream may last."""
        ...

    def chunks(self, chunk_seconds: float) -> AsyncIterator[audio_pb2.AudioChunk]:
        """The audio from the start, as contiguous chunks of `chunk_seconds`."""
        ...


class TranscriberBackend(Protocol):
    def transcribe(
        self, audio: AudioSource, options: TranscriptionOptions
    ) -> AsyncIterator[TranscriptEvent]:
        """Stream `audio` to a transcriber; segments as they are final (with progress and
        warnings about speech left without text in between), then `TranscriptDone`."""
        ...

    async def health(self) -> BackendHealth: ...

    async def served_model(self) -> str:
        """The model it serves, from its `GetInfo` (names its pool)."""
        ...


class DiarizerBackend(Protocol):
    def diarize(
        self, audio: AudioSource, options: DiarizationOptions
    ) -> AsyncIterator[DiarizationEvent]:
        """Stream `audio` to a diarizer; progress, then `DiarizationDone`."""
        ...

    async def health(self) -> BackendHealth: ...

    async def models(self) -> tuple[str, str]:
        """(segmentation, embedding) model names."""
        ...
