"""Fake diarization engine for the diarizer servicer's tests: alternating speakers, no models."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from diarizer.domain import DiarizerEngineInfo
from whospoke.common.audio import Samples, seconds
from whospoke.contract.diarization import (
    DiarizationOptions,
    DiarizationOutput,
    ProvisionalTurns,
    SpeakerInfo,
    Turn,
)


class FakeDiarizationSession:
    """Two speakers alternating every second; analyses everything it receives."""

    def __init__(self, options: DiarizationOptions) -> None:
        self.options = options
        self.received = 0
        self.analysed = 0
        self.live_sent = 0

    @property
    def received_seconds(self) -> float:
        return seconds(self.received)

    @property
    def analysed_seconds(self) -> float:
        return seconds(self.analysed)

    @property
    def buffered_seconds(self) -> float:
        return seconds(self.received - self.analysed)

    def push(self, samples: Samples) -> None:
        self.received += samples.size

    def run(self, final: bool, stop: threading.Event) -> Iterator[float]:
        self.analysed = self.received
        yield self.analysed_seconds

    def live_turns(self) -> ProvisionalTurns:
        """The same alternating turns as the result, each once, up to what was analysed."""
        if not self.options.live_turns:
            return ProvisionalTurns()
        whole = int(self.analysed_seconds)
        turns = tuple(Turn(i, i + 1, f"SPEAKER_0{i % 2}") for i in range(self.live_sent, whole))
        self.live_sent = max(self.live_sent, whole)
        return ProvisionalTurns(turns, turns, float(self.live_sent))

    def finish(self) -> DiarizationOutput:
        whole = int(self.received_seconds)
        turns = tuple(Turn(i, i + 1, f"SPEAKER_0{i % 2}") for i in range(whole))
        speakers = tuple(
            SpeakerInfo(label, float(len([t for t in turns if t.speaker == label])), (0.5, 0.5))
            for label in sorted({t.speaker for t in turns})
        )
        return DiarizationOutput(turns, turns, speakers)


class FakeDiarizationEngine:
    ready = True

    def __init__(self) -> None:
        self.sessions: list[FakeDiarizationSession] = []

    def load(self) -> None:
        pass

    def info(self) -> DiarizerEngineInfo:
        return DiarizerEngineInfo(
            segmentation_model="seg",
            embedding_model="emb",
            embedding_mode="pooled",
            device="cpu",
            clustering_method="centroid",
            clustering_threshold=0.6,
            min_cluster_size=12,
            window_step_seconds=1.0,
        )

    def open_session(self, options: DiarizationOptions) -> FakeDiarizationSession:
        self.sessions.append(FakeDiarizationSession(options))
        return self.sessions[-1]
