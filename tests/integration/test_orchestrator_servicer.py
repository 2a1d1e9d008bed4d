"""The Orchestrator servicer with fake backends, on an in-process server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.fakes import FakeDiarizer, FakeTranscriber, serve, wav_bytes
from whospoke.common.errors import Unavailable
from whospoke.contract.diarization import DiarizationOptions
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc


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
    merging = [i for i, e in enumerate(got) if e.stage.stage == pb.STAGE_MERGING]
    assert first_segment < merging[0]
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


async def test_diarizer_failure_degrades_to_a_transcript_with_a_warning(tmp_path: Path) -> None:
    diarizer = FakeDiarizer(fail=Unavailable("diarizer: connection refused"))
    async with serve(FakeTranscriber(), diarizer, tmp_path) as stub:
        got = await events(stub, pb.ProcessRequest(audio=wav_bytes(2)))
    warnings = [e.warning for e in got if e.HasField("warning")]
    assert [w.code for w in warnings] == ["diarization_failed"]
    assert "UNAVAILABLE: diarizer: connection refused" in warnings[0].message
    result = got[-1].result
    assert result.text == "one two one two"
    assert all(not s.speaker for s in result.segments)


async def test_required_diarization_failure_is_unavailable_and_cancels_the_other(
    tmp_path: Path,
) -> None:
    transcriber = FakeTranscriber(hold=asyncio.Event())
    diarizer = FakeDiarizer(fail=Unavailable("diarizer: connection refused"))
    async with serve(transcriber, diarizer, tmp_path) as stub:
        request = pb.ProcessRequest(
            audio=wav_bytes(2), options=pb.ProcessOptions(require_diarization=True)
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await events(stub, request)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "diarizer: connection refused" in (caught.value.details() or "")
    await asyncio.wait_for(transcriber.cancelled.wait(), 5)


async def test_transcriber_failure_is_unavailable_and_cancels_the_diarizer(tmp_path: Path) -> None:
    transcriber = FakeTranscriber(fail=Unavailable("transcriber: connection refused"))
    diarizer = FakeDiarizer(hold=asyncio.Event())
    async with serve(transcriber, diarizer, tmp_path) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await events(stub, pb.ProcessRequest(audio=wav_bytes(2)))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "transcriber: connection refused" in (caught.value.details() or "")
    await asyncio.wait_for(diarizer.cancelled.wait(), 5)


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
