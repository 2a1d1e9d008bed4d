"""What the gateway's own transcription requests are doing, for `/status` and the dashboard.

A `Process` call is not a durable job, so the orchestrator keeps no record of it that
others can list; the gateway records the calls it makes (stage, percent, segments so far)
while they run, and keeps the finished ones for an hour, for the dashboard's recent list
and throughput. Texts are kept here too, and shown only to callers with a token.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field

from whospoke.v1 import orchestrator_pb2 as pb

KEEP_SECONDS = 3600.0
MAX_RECENT = 1000
MAX_LINES = 200
"""Transcript lines kept per running request (the dashboard shows the latest)."""

_STAGES = {
    pb.STAGE_DECODING: "decoding",
    pb.STAGE_TRANSCRIBING: "transcribing",
    pb.STAGE_DIARIZING: "diarizing",
    pb.STAGE_MERGING: "merging",
}


@dataclass
class Request:
    """One transcription or translation request made through the gateway."""

    id: str
    kind: str
    filename: str
    size_bytes: int
    diarize: bool
    created: float = field(default_factory=time.time)
    state: str = "queued"
    stage: str = ""
    queue_position: int = 0
    percent: float = 0.0
    segments: int = 0
    audio_seconds: float = 0.0
    started: float = 0.0
    finished: float = 0.0
    error: str = ""
    lines: list[tuple[str, str]] = field(default_factory=list)
    """(speaker, text) of the transcript so far; speaker empty until it is known."""

    @property
    def processing_seconds(self) -> float:
        end = self.finished or time.time()
        return max(0.0, end - (self.started or self.created))

    @property
    def real_time_factor(self) -> float | None:
        if not self.finished or self.audio_seconds <= 0:
            return None
        return self.processing_seconds / self.audio_seconds

    def observe(self, event: pb.ProcessEvent) -> None:
        """Follow one `Process` event."""
        kind = event.WhichOneof("event")
        if kind == "queued":
            self.state, self.queue_position = "queued", event.queued.position
        elif kind == "stage":
            if self.state == "queued":
                self.state, self.started = "running", time.time()
            self.stage = _STAGES.get(event.stage.stage, self.stage)
            self.audio_seconds = event.stage.audio_duration_seconds or self.audio_seconds
        elif kind == "progress":
            self.percent = event.progress.overall_percent
            self.segments = event.progress.segment_count
        elif kind == "segment":
            self.lines.append(("", event.segment.text.strip()))
        elif kind == "attributed_segment":
            self._attributed(event.attributed_segment)
        elif kind == "result":
            result = event.result
            self.lines = [(s.speaker, s.text.strip()) for s in result.segments]
            self.audio_seconds = result.audio_duration_seconds
            self.percent, self.segments = 100.0, len(result.segments)
        del self.lines[:-MAX_LINES]

    def _attributed(self, segment: pb.AttributedSegment) -> None:
        """Speakers arrive after the text: the unattributed lines give way to attributed ones."""
        unattributed = [i for i, (who, _) in enumerate(self.lines) if not who]
        if unattributed:
            self.lines = [line for line in self.lines if line[0]]
        self.lines.append((segment.speaker or "unknown", segment.text.strip()))

    def finish(self, state: str, error: str = "") -> None:
        self.state, self.error, self.finished = state, error, time.time()


class Activity:
    """The gateway's running and recently finished requests."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.running: dict[str, Request] = {}
        self.recent: deque[Request] = deque(maxlen=MAX_RECENT)

    def begin(self, kind: str, filename: str, size_bytes: int, diarize: bool) -> Request:
        request = Request(f"req_{next(self._ids)}", kind, filename, size_bytes, diarize)
        self.running[request.id] = request
        return request

    def end(self, request: Request, state: str, error: str = "") -> None:
        request.finish(state, error)
        self.running.pop(request.id, None)
        self.recent.append(request)
        self.prune()

    def prune(self, now: float | None = None) -> None:
        """Forget requests finished more than an hour ago."""
        cutoff = (now or time.time()) - KEEP_SECONDS
        while self.recent and self.recent[0].finished < cutoff:
            self.recent.popleft()
