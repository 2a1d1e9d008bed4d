"""The diarizer's domain types and the engine interface the servicer depends on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from whospoke.common.audio import Samples
from whospoke.contract.diarization import (
    DiarizationOptions,
    DiarizationOutput,
    ProvisionalTurns,
)


@dataclass(frozen=True)
class DiarizerEngineInfo:
    segmentation_model: str
    embedding_model: str
    embedding_mode: str
    device: str
    clustering_method: str
    clustering_threshold: float
    min_cluster_size: int
    window_step_seconds: float
    device_index: int = 0
    """Index of the CUDA device when `device` is "cuda" (GPU statistics need it)."""


class DiarizationSession(Protocol):
    """One stream's state. `push` runs on the event loop; `run`/`finish` in a worker thread."""

    @property
    def received_seconds(self) -> float: ...

    @property
    def analysed_seconds(self) -> float: ...

    @property
    def buffered_seconds(self) -> float: ...

    def push(self, samples: Samples) -> None: ...

    def run(self, final: bool, stop: threading.Event) -> Iterator[float]:
        """Analyse every window whose audio is complete; yields seconds analysed."""
        ...

    def finish(self) -> DiarizationOutput:
        """Cluster and build the turns (after the last `run(final=True)`)."""
        ...

    def live_turns(self) -> ProvisionalTurns:
        """Provisional turns found since the last call, and up to where (seconds) turns
        have been given; nothing unless the options asked for live turns."""
        ...


class DiarizationEngine(Protocol):
    @property
    def ready(self) -> bool: ...

    def load(self) -> None: ...

    def info(self) -> DiarizerEngineInfo: ...

    def open_session(self, options: DiarizationOptions) -> DiarizationSession: ...
