"""Fake transcriber and diarizer backends, and an in-process orchestrator using them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
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
    DiarizationDone,
    DiarizationEvent,
    Progressed,
    TranscriptDone,
    TranscriptEvent,
)
from orchestrator.server import build_spec
from whospoke.common.audio import SAMPLE_RATE
from whospoke.common.audio import wav_bytes as encode_wav
from whospoke.common.config import ServerConfig
from whospoke.common.metrics import Metrics
from whospoke.common.server import start_server
from whospoke.contract.diarization import DiarizationOptions, DiarizationOutput, SpeakerInfo, Turn
from whospoke.contract.transcription import Segment, TranscriptionOptions, Word
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc


@dataclass
class FakeTranscriber:
    """One two-word segment per second of audio; can hold, fail, and record cancellation."""

    hold: asyncio.Event | None = None
    fail: Exception | None = None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    options: list[TranscriptionOptions] = field(default_factory=list)

    async def transcribe(
        self, audio: AudioSource, options: TranscriptionOptions
    ) -> AsyncIterator[TranscriptEvent]:
        self.options.append(options)
        try:
            async for chunk in audio.chunks(1.0):
                if len(chunk.pcm_s16le) < 2 * SAMPLE_RATE:
                    continue
                second = chunk.offset_samples // SAMPLE_RATE
                if self.hold is not None:
                    await self.hold.wait()
                if self.fail is not None:
                    raise self.fail
                s = float(second)
                words = (Word(s, s + 0.4, " one", 0.9), Word(s + 0.5, s + 0.9, " two", 0.8))
                yield Segment(second, s, s + 0.9, " one two", words)
                yield Progressed(s + 1)
                await asyncio.sleep(0)
            yield TranscriptDone("en", "fake-whisper")
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def health(self) -> BackendHealth:
        return BackendHealth("transcriber", "fake:1", True)


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
        duration = int(audio.duration_seconds)
        try:
            if self.hold is not None:
                await self.hold.wait()
            received = sum([len(c.pcm_s16le) // 2 async for c in audio.chunks(2.0)])
            assert received == round(audio.duration_seconds * SAMPLE_RATE)
            if self.fail is not None:
                raise self.fail
            yield Progressed(duration / 2)
            turns = tuple(
                Turn(s + half * 0.5, s + half * 0.5 + 0.5, f"SPEAKER_0{half}")
                for s in range(duration)
                for half in (0, 1)
            )
            speakers = (SpeakerInfo("SPEAKER_00", duration / 2), SpeakerInfo("SPEAKER_01", 1.0))
            yield DiarizationDone(DiarizationOutput(turns, turns, speakers))
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def health(self) -> BackendHealth:
        return BackendHealth("diarizer", "fake:2", False, "NOT_SERVING")

    async def models(self) -> tuple[str, str]:
        return "fake-segmentation", "fake-embedding"


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
    transcriber: FakeTranscriber,
    diarizer: FakeDiarizer,
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
    spec = build_spec(config, transcriber, diarizer, metrics)
    running = await start_server(config.server, spec, metrics)
    await running.set_serving(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield Harness(pb_grpc.OrchestratorStub(channel), channel, metrics, config)
    await running.stop(0)


@asynccontextmanager
async def serve(
    transcriber: FakeTranscriber,
    diarizer: FakeDiarizer,
    tmp: Path,
    queued: int = 4,
    **limits: Any,
) -> AsyncIterator[pb_grpc.OrchestratorAsyncStub]:
    async with harness(transcriber, diarizer, tmp, queued, **limits) as h:
        yield h.stub
