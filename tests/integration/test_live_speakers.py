"""Speaker-attributed segments go out as soon as a segment and the speaker turns are known.

A real in-process orchestrator with fake backends whose timing the test
controls: the fake transcriber holds its later segments until the test sees the
first attributed one (so diarization ends first), or the fake diarizer holds
until transcription is done (so it ends last). Either way the attributed
segments sent are, in order, the result's segments.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orchestrator.config import JobsConfig
from tests.fakes import FakeDiarizer, FakeTranscriber, harness, serve, wav_bytes
from whospoke.common.errors import Unavailable
from whospoke.v1 import jobs_pb2 as jobs
from whospoke.v1 import jobs_pb2_grpc as jobs_grpc
from whospoke.v1 import orchestrator_pb2 as pb

LIVE = ("segment", "attributed_segment")


def kinds(events: list[pb.ProcessEvent]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


def attributed(events: list[pb.ProcessEvent]) -> list[pb.AttributedSegment]:
    return [e.attributed_segment for e in events if e.HasField("attributed_segment")]


def merging(events: list[pb.ProcessEvent]) -> int:
    return next(i for i, e in enumerate(events) if e.stage.stage == pb.STAGE_MERGING)


async def test_speakers_known_first_follow_each_segment_live(tmp_path: Path) -> None:
    hold = asyncio.Event()
    transcriber = FakeTranscriber(hold=hold, hold_from=1)  # second 0 goes out, then waits
    got: list[pb.ProcessEvent] = []
    async with serve(transcriber, FakeDiarizer(), tmp_path) as stub:
        async for event in stub.Process(pb.ProcessRequest(audio=wav_bytes(3)), timeout=10):
            got.append(event)
            if event.HasField("attributed_segment"):
                hold.set()  # the diarization has ended: let the transcript go on
    result = got[-1].result
    live = [k for k in kinds(got) if k in LIVE]
    # Each segment's words: " one" in speaker 0's half second, " two" in speaker 1's.
    assert live == ["segment", "attributed_segment", "attributed_segment"] * 3
    last_segment = max(i for i, k in enumerate(kinds(got)) if k == "segment")
    assert kinds(got).index("attributed_segment") < last_segment < merging(got)
    assert attributed(got) == list(result.segments)
    assert [s.speaker for s in attributed(got)] == ["SPEAKER_00", "SPEAKER_01"] * 3
    assert [s.text for s in attributed(got)] == ["one", "two"] * 3


async def test_speakers_known_last_attribute_every_segment_before_the_merge(
    tmp_path: Path,
) -> None:
    hold = asyncio.Event()
    got: list[pb.ProcessEvent] = []
    async with serve(FakeTranscriber(), FakeDiarizer(hold=hold), tmp_path) as stub:
        async for event in stub.Process(pb.ProcessRequest(audio=wav_bytes(3)), timeout=10):
            got.append(event)
            if event.HasField("progress") and event.progress.transcription_done:
                hold.set()
    result = got[-1].result
    names = kinds(got)
    last_segment = max(i for i, k in enumerate(names) if k == "segment")
    diarized = next(i for i, e in enumerate(got) if e.progress.diarization_done)
    first = names.index("attributed_segment")
    assert last_segment < diarized < first
    assert names[first : first + 6] == ["attributed_segment"] * 6
    assert first + 6 <= merging(got) < len(got) - 1
    assert attributed(got) == list(result.segments) and len(result.segments) == 6


@pytest.mark.parametrize(
    ("options", "diarizer"),
    [
        (pb.ProcessOptions(skip_diarization=True), FakeDiarizer()),
        (pb.ProcessOptions(skip_transcription=True), FakeDiarizer()),
        (pb.ProcessOptions(), FakeDiarizer(fail=Unavailable("diarizer down"))),
    ],
    ids=["skip-diarization", "skip-transcription", "diarization-failed"],
)
async def test_no_attributed_segments_without_both_stages(
    tmp_path: Path, options: pb.ProcessOptions, diarizer: FakeDiarizer
) -> None:
    async with serve(FakeTranscriber(), diarizer, tmp_path) as stub:
        request = pb.ProcessRequest(audio=wav_bytes(2), options=options)
        got = [e async for e in stub.Process(request, timeout=10)]
    result = got[-1].result
    assert attributed(got) == []
    assert kinds(got).count("segment") == (0 if options.skip_transcription else 2)
    if diarizer.fail is not None:  # the transcript still comes, its speakers unknown
        assert [w.code for w in result.warnings] == ["diarization_failed"]
        assert len(result.segments) == 2 and {s.speaker for s in result.segments} == {""}


async def test_a_durable_job_stores_and_replays_them(tmp_path: Path) -> None:
    config = JobsConfig(data_dir=tmp_path / "data", lease_seconds=0.6, poll_seconds=0.05)
    async with harness(FakeTranscriber(), FakeDiarizer(), tmp_path, jobs=config) as h:
        stub = jobs_grpc.JobsStub(h.channel)
        job_id = (await stub.SubmitJob(jobs.SubmitJobRequest(audio=wav_bytes(2)))).job_id
        request = jobs.WatchJobRequest(job_id=job_id)
        watched = [e async for e in stub.WatchJob(request, timeout=20)]
        replayed = [e async for e in stub.WatchJob(request, timeout=20)]
    assert watched == replayed
    assert [e.sequence for e in watched] == list(range(1, len(watched) + 1))
    assert len(attributed(watched)) == 4
    assert attributed(watched) == list(watched[-1].result.segments)
