"""What a `Process` client sees of a job's progress, through a real orchestrator server.

Decoding is watched mid-way: the uploaded file is swapped for a named pipe that
delivers its second half only once the client has seen the first half decoded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes import FakeDiarizer, FakeTranscriber, harness, wav_bytes
from tests.media import PipedFile, encoded
from whospoke.contract.renderings import render
from whospoke.contract.transcription import SpeechWarning
from whospoke.v1 import orchestrator_pb2 as pb

SECONDS = 12.0


async def test_decoding_advances_then_each_stage_reports_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orchestrator.jobs.DECODE_PROGRESS_SECONDS", 0.02)
    flac = encoded("flac", "flac", seconds=SECONDS)
    release_diarizer = asyncio.Event()
    diarizer = FakeDiarizer(hold=release_diarizer)
    async with harness(FakeTranscriber(), diarizer, tmp_path) as h:

        async def chunks() -> AsyncIterator[pb.UploadChunk]:
            yield pb.UploadChunk(data=flac, filename="slow.flac")

        upload = await h.stub.Upload(chunks(), timeout=10)
        stored = h.config.uploads.directory / f"{upload.upload_id}.bin"
        assert stored.exists()
        stored.unlink()
        pipe = PipedFile(stored, flac, len(flac) // 2)
        got: list[pb.ProcessEvent] = []
        try:
            request = pb.ProcessRequest(upload_id=upload.upload_id)
            async for event in h.stub.Process(request, timeout=20):
                got.append(event)
                p = event.progress
                if event.HasField("progress") and 0 < p.decoding_percent < 100:
                    pipe.release.set()
                if event.HasField("progress") and p.transcription_done:
                    release_diarizer.set()  # diarization ends only after transcription has
        finally:
            pipe.close()
    progress = [e.progress for e in got if e.HasField("progress")]
    decoding = [p.decoding_percent for p in progress]
    assert decoding == sorted(decoding) and decoding[-1] == 100
    assert any(0 < d < 100 for d in decoding)  # seen mid-way, before the rest was written
    stages = [i for i, e in enumerate(got) if e.HasField("stage")]
    transcribing = next(i for i in stages if got[i].stage.stage == pb.STAGE_TRANSCRIBING)
    assert got[transcribing - 1].progress.decoding_percent == 100
    ends = [(p.transcription_done, p.diarization_done) for p in progress]
    first_t = ends.index((True, False))
    assert ends[-1] == (True, True) and first_t < ends.index((True, True))
    frozen = {p.transcription_elapsed_seconds for p in progress[first_t:]}
    assert len(frozen) == 1
    assert len({p.decoding_elapsed_seconds for p in progress[decoding.index(100) :]}) == 1
    assert progress[-1].overall_percent == pytest.approx(100)
    assert got[-1].result.audio_duration_seconds == pytest.approx(SECONDS)


async def test_a_transcriber_warning_reaches_the_client_with_its_time_range(
    tmp_path: Path,
) -> None:
    warnings = (
        SpeechWarning("no_text", "speech at 1.0-2.5 s produced no text", 1.0, 2.5),
        SpeechWarning("repetition", "a decoding loop was cut", 2.0, 3.0),
    )
    async with harness(FakeTranscriber(warnings=warnings), FakeDiarizer(), tmp_path) as h:
        request = pb.ProcessRequest(audio=wav_bytes(3))
        got = [e async for e in h.stub.Process(request, timeout=10)]
    sent = [e.warning for e in got if e.HasField("warning")]
    assert [(w.code, w.message, w.start_seconds, w.end_seconds) for w in sent] == [
        ("no_text", "speech at 1.0-2.5 s produced no text", 1.0, 2.5),
        ("repetition", "a decoding loop was cut", 2.0, 3.0),
    ]
    assert list(got[-1].result.warnings) == sent  # the stored result keeps them
    rendered = json.loads(render(got[-1].result, "json"))["warnings"]
    assert [(w["code"], w["start"], w["end"]) for w in rendered] == [
        ("no_text", 1.0, 2.5),
        ("repetition", 2.0, 3.0),
    ]


async def test_speech_warnings_replace_the_no_speech_warning(tmp_path: Path) -> None:
    """Speech the transcriber heard but could not write is not "no speech"."""
    heard = (SpeechWarning("low_confidence", "dropped as unreliable", 0.0, 1.9),)

    transcriber = FakeTranscriber(warnings=heard, writes=False)
    async with harness(transcriber, FakeDiarizer(), tmp_path) as h:
        got = [e async for e in h.stub.Process(pb.ProcessRequest(audio=wav_bytes(2)), timeout=10)]
    codes = [e.warning.code for e in got if e.HasField("warning")]
    assert codes == ["low_confidence"]
