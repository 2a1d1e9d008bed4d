"""A fake transcription engine for servicer tests: deterministic, instant, controllable."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from transcriber.domain import EngineInfo
from whospoke.common.audio import SAMPLE_RATE, Samples, seconds
from whospoke.common.errors import InvalidArgument
from whospoke.contract.transcription import Segment, TranscriptionOptions, Word


@dataclass
class FakeSession:
    """Emits one segment per whole second of audio, all the rest when final.

    When `gate` is given, `run` waits for it (checking `stop`) before each segment,
    which lets tests hold a stream busy or observe cancellation.
    """

    options: TranscriptionOptions
    gate: threading.Event | None = None
    fail_with: Exception | None = None
    received: int = 0
    done: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def received_seconds(self) -> float:
        return seconds(self.received)

    @property
    def transcribed_seconds(self) -> float:
        return seconds(self.done)

    @property
    def buffered_seconds(self) -> float:
        return seconds(self.received - self.done)

    @property
    def language(self) -> tuple[str, float]:
        return (self.options.language or "en", 1.0 if self.options.language else 0.9)

    def push(self, samples: Samples) -> None:
        self.received += samples.size

    def run(self, final: bool, stop: threading.Event) -> Iterator[Segment]:
        if self.fail_with is not None:
            raise self.fail_with
        while self.received - self.done >= SAMPLE_RATE or (final and self.received > self.done):
            while self.gate is not None and not self.gate.wait(0.01):
                if stop.is_set():
                    self.stopped.set()
                    return
            end = min(self.done + SAMPLE_RATE, self.received)
            start_s, end_s = seconds(self.done), seconds(end)
            index = self.done // SAMPLE_RATE
            self.done = end
            yield Segment(
                index=index,
                start=start_s,
                end=end_s,
                text=f" second {index}",
                words=(Word(start_s, end_s, f" second{index}", 0.9),),
            )


class FakeEngine:
    def __init__(
        self,
        ready: bool = True,
        gate: threading.Event | None = None,
        fail_with: Exception | None = None,
    ) -> None:
        self._ready = ready
        self.gate = gate
        self.fail_with = fail_with
        self.sessions: list[FakeSession] = []

    @property
    def ready(self) -> bool:
        return self._ready

    def load(self) -> None:
        self._ready = True

    def info(self) -> EngineInfo:
        return EngineInfo("fake", "cpu", 0, "int8", True, ("en", "fr"), 2)

    def validate(self, options: TranscriptionOptions) -> None:
        if options.language not in (None, "en", "fr"):
            raise InvalidArgument(f"config.language: unknown language code {options.language!r}")

    def open_session(self, options: TranscriptionOptions) -> FakeSession:
        session = FakeSession(options, self.gate, self.fail_with)
        self.sessions.append(session)
        return session
