"""Fakes: engines for the servicer tests, backends for the orchestrator's.

- `FakeTranscriptionEngine` / `FakeDiarizationEngine` (tests/fake_diarization.py,
  re-exported here): deterministic, instant engines behind the transcriber's and
  diarizer's servicers (real gRPC servers, no models).
- `FakeTranscriber` / `FakeDiarizer`: backends for an in-process orchestrator
  (`harness`, `serve`), which can hold, fail and record cancellation.
- `PipedFile`: a file that arrives in two parts, the second when the test says, so
  that a test sees a decode in progress without timing it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from orchestrator.config import BackendsConfig, OrchestratorConfig, UploadsConfig
from orchestrator.domain import (
    AudioSource,
    BackendHealth,
    BackendInfo,
    DiarizationDone,
    DiarizationEvent,
    DiarizerBackend,
    LiveTurns,
    Progressed,
    TranscriberBackend,
    TranscriptDone,
    TranscriptEvent,
)
from orchestrator.pools import TranscriberPools
from orchestrator.server import build_spec
from tests.fake_diarization import FakeDiarizationEngine as FakeDiarizationEngine
from tests.fake_diarization import FakeDiarizationSession as FakeDiarizationSession
from transcriber.domain import EngineInfo
from whospoke.common.audio import SAMPLE_RATE, Samples, seconds
from whospoke.common.audio import wav_bytes as encode_wav
from whospoke.common.config import ServerConfig
from whospoke.common.errors import InvalidArgument
from whospoke.common.metrics import Metrics
from whospoke.common.server import start_server
from whospoke.contract.diarization import DiarizationOptions, DiarizationOutput, SpeakerInfo, Turn
from whospoke.contract.transcription import (
    LanguageShare,
    Segment,
    SpeechWarning,
    TranscriptionOptions,
    Word,
    language_shares,
)
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc


@dataclass
class FakeTranscriptionSession:
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

    @property
    def languages(self) -> list[LanguageShare]:
        return language_shares([(self.language[0], seconds(self.done))])

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
                language=self.language[0],
            )


class FakeTranscriptionEngine:
    def __init__(
        self,
        ready: bool = True,
        gate: threading.Event | None = None,
        fail_with: Exception | None = None,
        model: str = "fake",
    ) -> None:
        self._ready = ready
        self.gate = gate
        self.fail_with = fail_with
        self.model = model
        self.sessions: list[FakeTranscriptionSession] = []

    @property
    def ready(self) -> bool:
        return self._ready

    def load(self) -> None:
        self._ready = True

    def info(self) -> EngineInfo:
        return EngineInfo(self.model, "cpu", 0, "int8", True, ("en", "fr"), 2)

    def validate(self, options: TranscriptionOptions) -> None:
        if options.language not in (None, "en", "fr"):
            raise InvalidArgument(f"config.language: unknown language code {options.language!r}")

    def open_session(self, options: TranscriptionOptions) -> FakeTranscriptionSession:
        session = FakeTranscriptionSession(options, self.gate, self.fail_with)
        self.sessions.append(session)
        return session


@dataclass
class FakeTranscriber:
    """One two-word segment per second of audio; can hold, fail, and record cancellation.

    `cancelled` is set when the call is cancelled while it waits, and when the caller
    closes it at a `yield` (an orchestrator stream that ends early closes its backend
    streams; the real clients cancel the RPC then): which of the two happens depends
    on where the call was when the stream ended.

    `warnings` are sent after the segments, before the end, as a transcriber
    reports speech it could not turn into text; with `writes` False it sends no
    segment at all. `hold` is waited for before the segment of each second from
    `hold_from` on (the earlier ones go out at once).
    """

    hold: asyncio.Event | None = None
    hold_from: int = 0
    fail: Exception | None = None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    options: list[TranscriptionOptions] = field(default_factory=list)
    warnings: tuple[SpeechWarning, ...] = ()
    writes: bool = True
    model: str = "fake-whisper"

    async def transcribe(
        self, audio: AudioSource, options: TranscriptionOptions
    ) -> AsyncIterator[TranscriptEvent]:
        self.options.append(options)
        try:
            received = 0
            async for chunk in audio.chunks(1.0):  # a live stream's come as they arrive
                before, received = received, received + len(chunk.pcm_s16le) // 2
                for second in range(before // SAMPLE_RATE, received // SAMPLE_RATE):
                    for event in await self._second(second):
                        yield event
                    await asyncio.sleep(0)
            for warning in self.warnings:
                yield warning
            yield TranscriptDone("en", self.model)
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled.set()  # cancelled, or closed before its end: a real call is cancelled
            raise

    async def _second(self, second: int) -> list[TranscriptEvent]:
        """The segment of audio second `second` (once `hold` allows) and its progress."""
        if self.hold is not None and second >= self.hold_from:
            await self.hold.wait()
        if self.fail is not None:
            raise self.fail
        s = float(second)
        words = (Word(s, s + 0.4, " one", 0.9), Word(s + 0.5, s + 0.9, " two", 0.8))
        segment = [Segment(second, s, s + 0.9, " one two", words)] if self.writes else []
        return [*segment, Progressed(s + 1)]

    async def health(self) -> BackendHealth:
        return BackendHealth("transcriber", "fake:1", True, info=BackendInfo((self.model,)))

    async def served_model(self) -> str:
        return self.model


@dataclass
class FakeDiarizer:
    """Speaker 0 in the first half of every second, speaker 1 in the second half."""

    hold: asyncio.Event | None = None
    fail: Exception | None = None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    options: list[DiarizationOptions] = field(default_factory=list)

    async def diarize(
        self, audio: AudioSource, options: DiarizationOptions
    ) -> AsyncIterator[DiarizationEvent]:
        self.options.append(options)
        try:
            if self.hold is not None:
                await self.hold.wait()
            received = 0
            async for chunk in audio.chunks(2.0):  # a live stream's come as they arrive
                before, received = received, received + len(chunk.pcm_s16le) // 2
                if options.live_turns:
                    yield _live_turns(before / SAMPLE_RATE, received / SAMPLE_RATE)
            assert received == round(audio.duration_seconds * SAMPLE_RATE)
            duration = int(audio.duration_seconds)
            if self.fail is not None:
                raise self.fail
            yield Progressed(duration / 2)
            turns = _halves(0, duration)
            speakers = (SpeakerInfo("SPEAKER_00", duration / 2), SpeakerInfo("SPEAKER_01", 1.0))
            yield DiarizationDone(DiarizationOutput(turns, turns, speakers))
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled.set()  # cancelled, or closed before its end: a real call is cancelled
            raise

    async def health(self) -> BackendHealth:
        return BackendHealth("diarizer", "fake:2", False, "NOT_SERVING")

    async def models(self) -> tuple[str, str]:
        return "fake-segmentation", "fake-embedding"


def _halves(first: int, last: int) -> tuple[Turn, ...]:
    """Speaker 0 in the first half of each second from `first` to `last`, speaker 1 in the
    second half."""
    return tuple(
        Turn(s + half * 0.5, s + half * 0.5 + 0.5, f"SPEAKER_0{half}")
        for s in range(first, last)
        for half in (0, 1)
    )


def _live_turns(since: float, until: float) -> LiveTurns:
    """The provisional turns of the whole seconds between `since` and `until`."""
    return LiveTurns(_halves(int(since), int(until)), float(int(until)))


def wav_bytes(seconds: float) -> bytes:
    """`seconds` of a tone as a 16 kHz WAV file."""
    samples = np.sin(np.arange(int(seconds * SAMPLE_RATE)) / 8) * (8000 / 32768)
    return encode_wav(samples.astype(np.float32))


@dataclass
class Harness:
    """An in-process orchestrator with fake backends, and a channel to it."""

    stub: pb_grpc.OrchestratorAsyncStub
    channel: grpc.aio.Channel
    metrics: Metrics
    config: OrchestratorConfig


@asynccontextmanager
async def harness(
    transcriber: TranscriberBackend | TranscriberPools,
    diarizer: DiarizerBackend,
    tmp: Path,
    queued: int = 4,
    server: ServerConfig | None = None,
    uploads: UploadsConfig | None = None,
    **limits: Any,
) -> AsyncIterator[Harness]:
    config = OrchestratorConfig(
        server=server or ServerConfig(port=0),
        backends=BackendsConfig(),
        uploads=uploads or UploadsConfig(directory=tmp, max_bytes=1 << 20, ttl_seconds=60),
        max_queued_jobs=queued,
        **limits,
    )
    metrics = Metrics("orchestrator")
    async with (
        serving(config, transcriber, diarizer, metrics) as port,
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        yield Harness(pb_grpc.OrchestratorStub(channel), channel, metrics, config)


@asynccontextmanager
async def serving(
    config: OrchestratorConfig,
    transcriber: TranscriberBackend | TranscriberPools,
    diarizer: DiarizerBackend,
    metrics: Metrics | None = None,
) -> AsyncIterator[int]:
    """The real orchestrator server (bootstrap, servicer, limits) on these backends; its port."""
    metrics = metrics or Metrics("orchestrator")
    spec = build_spec(config, transcriber, diarizer, metrics)
    running = await start_server(config.server, spec, metrics)
    await running.load()
    try:
        yield running.port
    finally:
        await running.stop(0)


@asynccontextmanager
async def orchestrator_server(
    uploads: Path,
    transcriber: TranscriberBackend | None = None,
    diarizer: DiarizerBackend | None = None,
    server: ServerConfig | None = None,
    max_upload_bytes: int = 8 << 20,
) -> AsyncIterator[int]:
    """An orchestrator with fake backends on a free port, for tests of its clients."""
    config = OrchestratorConfig(
        server=server or ServerConfig(port=0),
        backends=BackendsConfig(),
        uploads=UploadsConfig(directory=uploads, max_bytes=max_upload_bytes, ttl_seconds=600),
    )
    async with serving(
        config, transcriber or FakeTranscriber(), diarizer or FakeDiarizer()
    ) as port:
        yield port


@asynccontextmanager
async def serve(
    transcriber: TranscriberBackend,
    diarizer: DiarizerBackend,
    tmp: Path,
    queued: int = 4,
    **limits: Any,
) -> AsyncIterator[pb_grpc.OrchestratorAsyncStub]:
    async with harness(transcriber, diarizer, tmp, queued, **limits) as h:
        yield h.stub
