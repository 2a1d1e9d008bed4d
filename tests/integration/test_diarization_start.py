"""`--diarization-start after-first-segment`: a file's diarizer call waits for the
transcriber's first segment (or its end, or the hold's limit), through a real
orchestrator server; the default starts both at once. Each backend here releases the
other on its first event, so a job that started them in the wrong order never ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.domain import AudioSource, DiarizationEvent, TranscriptEvent
from tests.fakes import FakeDiarizer, FakeTranscriber, harness, wav_bytes
from whospoke.contract.diarization import DiarizationOptions
from whospoke.contract.transcription import Segment
from whospoke.v1 import orchestrator_pb2 as pb


@dataclass
class Counting(FakeTranscriber):
    """Counts the segments it has sent."""

    sent: int = 0

    async def _second(self, second: int) -> list[TranscriptEvent]:
        events = await super()._second(second)
        self.sent += sum(isinstance(e, Segment) for e in events)
        return events


@dataclass
class Watching(FakeDiarizer):
    """Records how many segments the transcriber had sent when its call started, and
    sets `called` then."""

    transcriber: Counting = field(default_factory=Counting)
    called: asyncio.Event = field(default_factory=asyncio.Event)
    sent_before: list[int] = field(default_factory=list)

    async def diarize(
        self, audio: AudioSource, options: DiarizationOptions
    ) -> AsyncIterator[DiarizationEvent]:
        self.sent_before.append(self.transcriber.sent)
        self.called.set()
        async for event in super().diarize(audio, options):
            yield event


async def _process(diarizer: Watching, tmp: Path, start: str) -> pb.ProcessResult:
    async with harness(diarizer.transcriber, diarizer, tmp, diarization_start=start) as h:
        request = pb.ProcessRequest(audio=wav_bytes(4.0))
        events = [e async for e in h.stub.Process(request, timeout=20)]
    return events[-1].result


def _words(result: pb.ProcessResult) -> int:
    return sum(len(s.words) for s in result.segments)


async def test_after_first_segment_the_diarizer_starts_once_a_segment_is_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orchestrator.jobs.FIRST_SEGMENT_HOLD_SECONDS", 60.0)
    transcriber = Counting(hold_from=1)  # second 0's segment, then waits for the diarizer
    diarizer = Watching(transcriber=transcriber)
    transcriber.hold = diarizer.called
    result = await _process(diarizer, tmp_path, "after-first-segment")
    assert diarizer.sent_before == [1]
    assert [w.speaker for s in result.segments for w in s.words] == ["SPEAKER_00", "SPEAKER_01"] * 4


async def test_by_default_both_start_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orchestrator.jobs.FIRST_SEGMENT_HOLD_SECONDS", 60.0)
    transcriber = Counting(hold_from=0)  # no segment before the diarizer has been called
    diarizer = Watching(transcriber=transcriber)
    transcriber.hold = diarizer.called
    result = await _process(diarizer, tmp_path, "with-transcription")
    assert diarizer.sent_before == [0] and _words(result) == 8


async def test_a_transcript_without_segments_releases_the_diarizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orchestrator.jobs.FIRST_SEGMENT_HOLD_SECONDS", 60.0)
    diarizer = Watching(transcriber=Counting(writes=False))
    result = await _process(diarizer, tmp_path, "after-first-segment")
    assert diarizer.sent_before == [0] and not result.segments
    assert len(result.diarization_turns) == 8


async def test_the_hold_has_a_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A transcriber that has sent nothing yet does not keep the diarizer idle for long."""
    monkeypatch.setattr("orchestrator.jobs.FIRST_SEGMENT_HOLD_SECONDS", 0.05)
    transcriber = Counting(hold_from=0)
    diarizer = Watching(transcriber=transcriber)
    transcriber.hold = diarizer.called
    result = await _process(diarizer, tmp_path, "after-first-segment")
    assert diarizer.sent_before == [0] and _words(result) == 8
