"""The Transcriber servicer passes on what a session yields, in order: segments,
warnings about speech left without text, and progress within a piece.

A session that yields a warning and a progress marker between its segments
stands in for the engine's review (tests/unit/test_coverage.py covers when the
engine decides to warn).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import grpc
import numpy as np
import pytest

from tests.fakes import FakeTranscriptionEngine
from transcriber.config import ModelConfig, TranscriberConfig
from transcriber.domain import Transcribed, TranscriptionItem
from transcriber.server import build_spec
from whospoke.common.audio import SAMPLE_RATE, Samples, iter_chunks, seconds
from whospoke.common.config import ServerConfig
from whospoke.common.metrics import Metrics
from whospoke.common.server import start_server
from whospoke.contract.transcription import (
    LanguageShare,
    Segment,
    SpeechWarning,
    TranscriptionOptions,
    language_shares,
    warning_from_pb,
)
from whospoke.v1 import transcriber_pb2 as pb
from whospoke.v1 import transcriber_pb2_grpc as pb_grpc

LOST = SpeechWarning("no_text", "speech at 1.0-2.0 s produced no text", 1.0, 2.0)


class WarningSession:
    """One segment per second of audio, a warning after the first, and a progress
    marker after each: what the engine's review yields, in miniature."""

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0.0

    @property
    def received_seconds(self) -> float:
        return seconds(self.received)

    @property
    def transcribed_seconds(self) -> float:
        return self.sent

    @property
    def buffered_seconds(self) -> float:
        return self.received_seconds - self.sent

    @property
    def language(self) -> tuple[str, float]:
        return "en", 1.0

    @property
    def languages(self) -> list[LanguageShare]:
        return language_shares([("en", self.sent)])

    def push(self, samples: Samples) -> None:
        self.received += samples.size

    def run(self, final: bool, stop: threading.Event) -> Iterator[TranscriptionItem]:
        while self.received_seconds - self.sent >= 1.0 or (
            final and self.sent < self.received_seconds
        ):
            start, self.sent = self.sent, min(self.sent + 1.0, self.received_seconds)
            yield Segment(int(start), start, self.sent, f" second {int(start)}")
            if start == 0:
                yield LOST
            yield Transcribed(self.sent)


class WarningEngine(FakeTranscriptionEngine):
    def open_session(self, options: TranscriptionOptions) -> WarningSession:  # type: ignore[override]
        return WarningSession()


@asynccontextmanager
async def stub_of(engine: FakeTranscriptionEngine) -> AsyncIterator[pb_grpc.TranscriberAsyncStub]:
    config = TranscriberConfig(server=ServerConfig(port=0), model=ModelConfig(model="fake"))
    metrics = Metrics("transcriber")
    running = await start_server(config.server, build_spec(config, engine, metrics), metrics)
    await running.set_serving(True)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield pb_grpc.TranscriberStub(channel)
    finally:
        await running.stop(0)


async def requests(duration: float) -> AsyncIterator[pb.TranscribeRequest]:
    yield pb.TranscribeRequest(config=pb.TranscriptionConfig())
    samples = np.zeros(int(duration * SAMPLE_RATE), dtype=np.float32)
    for chunk in iter_chunks(samples, 3.0):
        yield pb.TranscribeRequest(audio=chunk)


async def test_warnings_and_progress_arrive_between_the_segments() -> None:
    async with stub_of(WarningEngine()) as stub:
        responses = [r async for r in stub.Transcribe(requests(3.0), timeout=10)]
    kinds = [r.WhichOneof("response") for r in responses]
    assert kinds[:4] == ["segment", "warning", "progress", "segment"]
    assert kinds[-1] == "summary" and kinds.count("warning") == 1
    (warning,) = [warning_from_pb(r.warning) for r in responses if r.HasField("warning")]
    assert warning == LOST
    # A progress reply inside a run reports the text sent so far, not the whole chunk.
    first_progress = next(r.progress for r in responses if r.HasField("progress"))
    assert first_progress.transcribed_seconds == pytest.approx(1.0)
    assert first_progress.received_seconds == pytest.approx(3.0)
    assert responses[-1].summary.segment_count == 3
