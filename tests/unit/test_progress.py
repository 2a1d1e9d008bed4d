"""A job's progress is truthful: each stage advances with real work and its timer stops.

The job runner runs here with fake backends and no server. Decoding is observed
mid-way by reading a FLAC file through a named pipe that delivers its second
half only when the test has seen the first half's progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.domain import JobOptions
from orchestrator.jobs import JobEvent, JobResult, JobRunner, StageStarted
from orchestrator.progress import JobWarning, ProgressUpdate
from orchestrator.spool import DecodeProgress
from tests.fakes import FakeDiarizer, FakeTranscriber, wav_bytes
from tests.media import PipedFile, encoded, flac_silence
from whospoke.common.audio import SAMPLE_RATE
from whospoke.common.decode import PcmDecoder
from whospoke.common.errors import Unavailable
from whospoke.common.limiter import Limiter
from whospoke.contract.diarization import DiarizationOptions
from whospoke.contract.transcription import TranscriptionOptions

PERCENTS = ("decoding_percent", "transcription_percent", "diarization_percent", "overall_percent")


def options(
    skip_transcription: bool = False,
    skip_diarization: bool = False,
    require_diarization: bool = False,
) -> JobOptions:
    return JobOptions(
        TranscriptionOptions(),
        DiarizationOptions(None, None, None),
        skip_transcription,
        skip_diarization,
        require_diarization,
    )


def runner(tmp: Path, transcriber: FakeTranscriber, diarizer: FakeDiarizer) -> JobRunner:
    return JobRunner(transcriber, diarizer, Limiter(1, 1), tmp / "spool")


def updates(events: list[JobEvent]) -> list[ProgressUpdate]:
    return [e for e in events if isinstance(e, ProgressUpdate)]


def assert_monotonic(progress: list[ProgressUpdate]) -> None:
    for name in PERCENTS:
        values = [getattr(p, name) for p in progress]
        assert values == sorted(values), name
        assert all(0 <= v <= 100 for v in values), name


async def test_percentages_only_grow_and_decoding_ends_before_transcribing(tmp_path: Path) -> None:
    transcriber, diarizer = FakeTranscriber(), FakeDiarizer()
    audio = wav_bytes(4)
    events = [
        e async for e in runner(tmp_path, transcriber, diarizer).run(lambda: audio, options())
    ]
    progress = updates(events)
    assert_monotonic(progress)
    transcribing = events.index(StageStarted("transcribing", 4.0))
    before = events[transcribing - 1]
    assert isinstance(before, ProgressUpdate) and before.decoding_percent == 100
    assert before.transcription_percent == 0 and before.transcription_elapsed == 0
    after = updates(events[transcribing:])
    assert len({p.decoding_elapsed for p in after}) == 1  # the decoding timer has stopped
    last = progress[-1]
    assert last.overall_percent == pytest.approx(100)
    assert last.transcription_done and last.diarization_done
    result = events[-1]
    assert isinstance(result, JobResult)
    assert result.timings.decoding == pytest.approx(before.decoding_elapsed)


async def test_a_finished_stage_keeps_its_time_while_the_other_runs(tmp_path: Path) -> None:
    """Transcription ends first; its elapsed time no longer moves, and its end is sent at once."""
    transcriber, diarizer = FakeTranscriber(), FakeDiarizer(hold=asyncio.Event())
    audio = wav_bytes(3)
    seen: list[ProgressUpdate] = []
    async for event in runner(tmp_path, transcriber, diarizer).run(lambda: audio, options()):
        if isinstance(event, ProgressUpdate):
            seen.append(event)
            if event.transcription_done:
                assert diarizer.hold is not None
                diarizer.hold.set()
    done = [p for p in seen if p.transcription_done]
    assert done[0].transcription_percent == 100 and not done[0].diarization_done
    assert len({p.transcription_elapsed for p in done}) == 1
    assert done[-1].diarization_done
    assert done[-1].diarization_elapsed >= done[-1].transcription_elapsed
    assert_monotonic(seen)


async def test_a_skipped_stage_is_done_at_once_and_takes_no_time(tmp_path: Path) -> None:
    audio = wav_bytes(2)
    job = runner(tmp_path, FakeTranscriber(), FakeDiarizer())
    events = [e async for e in job.run(lambda: audio, options(skip_diarization=True))]
    progress = updates(events)
    assert all(p.diarization_done and p.diarization_elapsed == 0 for p in progress)
    assert all(p.diarization_percent == 100 for p in progress)
    assert progress[-1].overall_percent == pytest.approx(100)


async def test_a_failed_diarization_ends_its_stage_without_holding_the_job_back(
    tmp_path: Path,
) -> None:
    diarizer = FakeDiarizer(fail=Unavailable("diarizer at x is unavailable: down"))
    audio = wav_bytes(3)
    events = [
        e async for e in runner(tmp_path, FakeTranscriber(), diarizer).run(lambda: audio, options())
    ]
    warning = next(e for e in events if isinstance(e, JobWarning))
    assert warning.code == "diarization_failed"
    following = events[events.index(warning) + 1]
    assert isinstance(following, ProgressUpdate) and following.diarization_done
    progress = updates(events)
    assert progress[-1].diarization_percent < 100  # truthful: it did not diarize it all
    assert progress[-1].overall_percent == pytest.approx(100)
    assert_monotonic(progress)


async def test_decoding_reports_progress_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orchestrator.jobs.DECODE_PROGRESS_SECONDS", 0.02)
    flac = encoded("flac", "flac", seconds=20.0)
    pipe = PipedFile(tmp_path / "slow.flac", flac, len(flac) // 2)
    during: list[ProgressUpdate] = []
    events: list[JobEvent] = []
    job = runner(tmp_path, FakeTranscriber(), FakeDiarizer())
    try:
        stream: AsyncIterator[JobEvent] = job.run(lambda: pipe.path, options())
        async with asyncio.timeout(60):  # a hung decoder fails the test instead of CI
            async for event in stream:
                events.append(event)
                if isinstance(event, ProgressUpdate) and not pipe.release.is_set():
                    during.append(event)
                    if event.decoding_percent > 0 and len(during) >= 3:
                        pipe.release.set()
    finally:
        pipe.close()
    midway = [p for p in during if p.decoding_percent > 0]
    assert midway and all(0 < p.decoding_percent < 100 for p in midway)
    assert during[-1].decoding_elapsed > during[0].decoding_elapsed
    assert all(p.transcription_percent == 0 and p.transcription_elapsed == 0 for p in during)
    assert all(p.overall_percent <= 5 for p in during)
    assert_monotonic(updates(events))
    result = events[-1]
    assert isinstance(result, JobResult) and result.audio_seconds == pytest.approx(20.0)


def test_decode_progress_is_below_100_until_done() -> None:
    progress = DecodeProgress(declared_seconds=10.0, decoded_seconds=4.0)
    assert progress.percent == pytest.approx(40.0)
    progress.decoded_seconds = 12.0  # the header understated the duration
    assert progress.percent < 100
    progress.done = True
    assert progress.percent == 100
    assert DecodeProgress(declared_seconds=0.0, decoded_seconds=5.0).percent == 0


def test_the_decoder_reports_the_duration_the_header_declares() -> None:
    decoder = PcmDecoder(flac_silence(2.0, declared_samples=8 * SAMPLE_RATE))
    decoded = sum(len(block) for block in decoder) // 2
    assert decoder.declared_seconds == pytest.approx(8.0)
    assert decoder.decoded_seconds == pytest.approx(2.0) and decoded == decoder.samples
    undeclared = PcmDecoder(flac_silence(1.0))
    assert sum(len(block) for block in undeclared) and undeclared.declared_seconds == 0
