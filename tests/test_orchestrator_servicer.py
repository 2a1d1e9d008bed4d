"""The Orchestrator servicer with fake backends, on an in-process server."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest

from diarizer.domain import DiarizationOptions, DiarizationOutput, SpeakerInfo, Turn
from orchestrator.config import BackendsConfig, OrchestratorConfig, UploadsConfig
from orchestrator.domain import (
    BackendHealth,
    DiarizationDone,
    DiarizationEvent,
    Progressed,
    TranscriptDone,
    TranscriptEvent,
)
from orchestrator.server import build_spec
from transcriber.domain import Segment, TranscriptionOptions, Word
from whospoke.common.audio import SAMPLE_RATE, Samples
from whospoke.common.config import ServerConfig
from whospoke.common.errors import Unavailable
from whospoke.common.metrics import Metrics
from whospoke.common.server import start_server
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc


@dataclass
class FakeTranscriber:
    """One two-word segment per second of audio; can hold, fail, and record cancellation."""

    hold: asyncio.Event | None = None
    fail: Exception | None = None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    options: list[TranscriptionOptions] = field(default_factory=list)

    async def transcribe(
        self, audio: Samples, options: TranscriptionOptions
    ) -> AsyncIterator[TranscriptEvent]:
        self.options.append(options)
        try:
            for second in range(int(audio.size / SAMPLE_RATE)):
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
        self, audio: Samples, options: DiarizationOptions
    ) -> AsyncIterator[DiarizationEvent]:
        self.options.append(options)
        duration = int(audio.size / SAMPLE_RATE)
        try:
            if self.hold is not None:
                await self.hold.wait()
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
    samples = (np.sin(np.arange(int(seconds * SAMPLE_RATE)) / 8) * 8000).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


@asynccontextmanager
async def serve(
    transcriber: FakeTranscriber, diarizer: FakeDiarizer, tmp: Path, queued: int = 4
) -> AsyncIterator[pb_grpc.OrchestratorAsyncStub]:
    config = OrchestratorConfig(
        server=ServerConfig(port=0),
        backends=BackendsConfig(),
        uploads=UploadsConfig(directory=tmp, max_bytes=1 << 20, ttl_seconds=60),
        max_queued_jobs=queued,
    )
    metrics = Metrics("orchestrator")
    spec = build_spec(config, transcriber, diarizer, metrics)
    running = await start_server(config.server, spec, metrics)
    await running.set_serving(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield pb_grpc.OrchestratorStub(channel)
    await running.stop(0)


async def events(
    stub: pb_grpc.OrchestratorAsyncStub, request: pb.ProcessRequest
) -> list[pb.ProcessEvent]:
    return [e async for e in stub.Process(request, timeout=10)]


async def test_events_in_order_and_words_attributed(tmp_path: Path) -> None:
    transcriber, diarizer = FakeTranscriber(), FakeDiarizer()
    async with serve(transcriber, diarizer, tmp_path) as stub:
        request = pb.ProcessRequest(audio=wav_bytes(3), options=pb.ProcessOptions(min_speakers=2))
        got = await events(stub, request)
    kinds = [e.WhichOneof("event") for e in got]
    stages = [e.stage.stage for e in got if e.HasField("stage")]
    assert stages == [
        pb.STAGE_DECODING,
        pb.STAGE_TRANSCRIBING,
        pb.STAGE_DIARIZING,
        pb.STAGE_MERGING,
    ]
    assert kinds[-1] == "result" and kinds.count("segment") == 3
    first_segment = kinds.index("segment")
    assert first_segment < kinds.index("stage", kinds.index("progress"))
    result = got[-1].result
    assert [(s.speaker, s.text) for s in result.segments] == [
        ("SPEAKER_00", "one"),
        ("SPEAKER_01", "two"),
    ] * 3
    assert all(w.speaker for s in result.segments for w in s.words)
    assert result.text == "one two one two one two"
    assert result.language == "en" and result.audio_duration_seconds == pytest.approx(3)
    assert len(result.transcription_segments) == 3 and len(result.diarization_turns) == 6
    assert result.models.transcription_model == "fake-whisper"
    assert result.models.segmentation_model == "fake-segmentation"
    assert result.timings.total_seconds >= result.timings.merge_seconds
    progress = [e.progress for e in got if e.HasField("progress")]
    assert progress[-1].overall_percent == pytest.approx(100)
    assert diarizer.options[0] == DiarizationOptions(None, 2, None)
    assert transcriber.options[0].beam_size == 0


async def test_skip_diarization_and_skip_transcription(tmp_path: Path) -> None:
    transcriber, diarizer = FakeTranscriber(), FakeDiarizer()
    async with serve(transcriber, diarizer, tmp_path) as stub:
        only_text = await events(
            stub,
            pb.ProcessRequest(audio=wav_bytes(2), options=pb.ProcessOptions(skip_diarization=True)),
        )
        only_turns = await events(
            stub,
            pb.ProcessRequest(
                audio=wav_bytes(2), options=pb.ProcessOptions(skip_transcription=True)
            ),
        )
    assert not diarizer.options[1:] and len(diarizer.options) == 1
    text = only_text[-1].result
    assert text.segments and all(not s.speaker for s in text.segments)
    turns = only_turns[-1].result
    assert not turns.segments and len(turns.diarization_turns) == 4
    codes = [e.warning.code for e in only_turns if e.HasField("warning")]
    assert codes == []


@pytest.mark.parametrize(
    ("options", "text"),
    [
        (pb.ProcessOptions(num_speakers=0), "options.num_speakers: must be at least 1"),
        (pb.ProcessOptions(min_speakers=3, max_speakers=2), "options.min_speakers: 3 is greater"),
        (pb.ProcessOptions(beam_size=99), "options.beam_size: 99 is above the maximum"),
        (
            pb.ProcessOptions(skip_diarization=True, skip_transcription=True),
            "cannot skip both",
        ),
    ],
)
async def test_bad_options_are_invalid_argument(
    tmp_path: Path, options: pb.ProcessOptions, text: str
) -> None:
    async with serve(FakeTranscriber(), FakeDiarizer(), tmp_path) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await events(stub, pb.ProcessRequest(audio=wav_bytes(1), options=options))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert text in (caught.value.details() or "")


async def test_undecodable_audio_and_missing_source(tmp_path: Path) -> None:
    async with serve(FakeTranscriber(), FakeDiarizer(), tmp_path) as stub:
        for request, text in (
            (pb.ProcessRequest(audio=b"not audio at all"), "audio:"),
            (pb.ProcessRequest(), "audio: give the recording's bytes"),
            (pb.ProcessRequest(upload_id="x" * 22), "upload_id: no upload"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await events(stub, request)
            assert caught.value.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.NOT_FOUND,
            )
            assert text in (caught.value.details() or "")


async def test_backend_failure_is_a_clear_status_and_cancels_the_other(tmp_path: Path) -> None:
    transcriber = FakeTranscriber(hold=asyncio.Event())
    diarizer = FakeDiarizer(fail=Unavailable("diarizer: connection refused"))
    async with serve(transcriber, diarizer, tmp_path) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await events(stub, pb.ProcessRequest(audio=wav_bytes(2)))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "diarizer: connection refused" in (caught.value.details() or "")
    await asyncio.wait_for(transcriber.cancelled.wait(), 5)


async def test_client_cancel_reaches_both_backends(tmp_path: Path) -> None:
    hold = asyncio.Event()
    transcriber, diarizer = FakeTranscriber(hold=hold), FakeDiarizer(hold=hold)
    async with serve(transcriber, diarizer, tmp_path) as stub:
        call = stub.Process(pb.ProcessRequest(audio=wav_bytes(2)))
        async for event in call:
            if event.stage.stage == pb.STAGE_DIARIZING:
                break
        call.cancel()
        await asyncio.wait_for(transcriber.cancelled.wait(), 5)
        await asyncio.wait_for(diarizer.cancelled.wait(), 5)


async def test_queue_positions_then_resource_exhausted(tmp_path: Path) -> None:
    hold = asyncio.Event()
    transcriber, diarizer = FakeTranscriber(hold=hold), FakeDiarizer()
    async with serve(transcriber, diarizer, tmp_path, queued=1) as stub:
        first = stub.Process(pb.ProcessRequest(audio=wav_bytes(1)))
        async for event in first:
            if event.HasField("stage") and event.stage.stage == pb.STAGE_TRANSCRIBING:
                break
        second = stub.Process(pb.ProcessRequest(audio=wav_bytes(1)))
        queued = await anext(aiter(second))
        assert queued.queued.position == 1
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await events(stub, pb.ProcessRequest(audio=wav_bytes(1)))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        status = await stub.GetStatus(pb.GetStatusRequest())
        assert (status.jobs_running, status.jobs_queued) == (1, 1)
        assert [(b.name, b.serving) for b in status.backends] == [
            ("transcriber", True),
            ("diarizer", False),
        ]
        hold.set()
        rest = [e async for e in second]
        assert rest[-1].HasField("result")
        first.cancel()


async def test_upload_then_process_get_and_delete(tmp_path: Path) -> None:
    async with serve(FakeTranscriber(), FakeDiarizer(), tmp_path) as stub:
        data = wav_bytes(2)

        async def chunks() -> AsyncIterator[pb.UploadChunk]:
            for start in range(0, len(data), 10_000):
                yield pb.UploadChunk(data=data[start : start + 10_000], filename="/x/talk.wav")

        uploaded = await stub.Upload(chunks())
        info = await stub.GetUpload(pb.GetUploadRequest(upload_id=uploaded.upload_id))
        assert (info.size_bytes, info.format, info.filename) == (len(data), "wav", "talk.wav")
        assert info.duration_seconds == pytest.approx(2) and info.expires_in_seconds > 50
        got = await events(stub, pb.ProcessRequest(upload_id=uploaded.upload_id))
        assert got[-1].result.audio_duration_seconds == pytest.approx(2)
        await stub.DeleteUpload(pb.DeleteUploadRequest(upload_id=uploaded.upload_id))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetUpload(pb.GetUploadRequest(upload_id=uploaded.upload_id))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

        async def too_big() -> AsyncIterator[pb.UploadChunk]:
            for _ in range(3):
                yield pb.UploadChunk(data=b"\0" * 500_000)

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Upload(too_big())
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not await asyncio.to_thread(lambda: list(tmp_path.glob(".*.part")))
