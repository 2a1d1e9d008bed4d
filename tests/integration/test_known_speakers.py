"""The Speakers service and known speakers in jobs, on a real orchestrator server with a
fake diarizer whose voices are set by the recording's length."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from orchestrator.domain import AudioSource, DiarizationDone, DiarizationEvent, Progressed
from tests.fakes import FakeDiarizer, FakeTranscriber, harness, wav_bytes
from whospoke.common.errors import Unavailable
from whospoke.contract.diarization import DiarizationOptions, DiarizationOutput, SpeakerInfo, Turn
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import jobs_pb2_grpc as jobs_grpc
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import speakers_pb2 as spb
from whospoke.v1 import speakers_pb2_grpc as spb_grpc

ALICE, BOB, CAROL = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
RECORDINGS = {
    4: [("SPEAKER_00", 4.0, ALICE)],
    5: [("SPEAKER_00", 4.5, BOB)],
    2: [("SPEAKER_00", 1.5, CAROL)],  # too short
    8: [("SPEAKER_00", 4.0, ALICE), ("SPEAKER_01", 3.5, BOB)],  # two voices
    6: [("SPEAKER_00", 3.0, ALICE), ("SPEAKER_01", 2.5, (0.9, 0.1, 0.0))],  # Alice, split
}
"""Speakers (label, speech seconds, embedding) of a recording, by its length in seconds."""
MEETING = [("SPEAKER_00", 5.0, (0.95, 0.05, 0.1)), ("SPEAKER_01", 5.0, CAROL)]


@dataclass
class Voices(FakeDiarizer):
    """Speakers and embeddings by the recording's length; alternating turns."""

    async def diarize(
        self, audio: AudioSource, options: DiarizationOptions
    ) -> AsyncIterator[DiarizationEvent]:
        self.options.append(options)
        if self.fail is not None:
            raise self.fail
        seconds = round(audio.duration_seconds)
        found = RECORDINGS.get(seconds, MEETING)
        turns = tuple(Turn(float(s), s + 1.0, found[s % len(found)][0]) for s in range(seconds))
        speakers = tuple(
            SpeakerInfo(label, speech, embedding if options.return_embeddings else ())
            for label, speech, embedding in found
        )
        yield Progressed(float(seconds))
        yield DiarizationDone(DiarizationOutput(turns, turns, speakers))


async def enroll(stub: spb_grpc.SpeakersAsyncStub, name: str, seconds: int) -> spb.Speaker:
    return await stub.EnrollSpeaker(spb.EnrollSpeakerRequest(name=name, audio=wav_bytes(seconds)))


async def code_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code(), caught.value.details() or ""


async def test_enroll_list_and_delete_voices(tmp_path: Path) -> None:
    async with harness(FakeTranscriber(), Voices(), tmp_path) as h:
        stub = spb_grpc.SpeakersStub(h.channel)
        alice = await enroll(stub, " Alice ", 4)
        assert (alice.name, alice.speech_seconds, list(alice.embedding)) == (
            "Alice",
            4.0,
            [1, 0, 0],
        )
        assert alice.embedding_model == "fake-embedding" and alice.enrolled_at_unix_seconds > 0
        split = await stub.EnrollSpeaker(
            spb.EnrollSpeakerRequest(name="Alice", audio=wav_bytes(6), replace=True)
        )
        assert split.speech_seconds == 5.5  # one voice split by the clustering, joined
        assert await code_of(enroll(stub, "Alice", 5)) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "name: 'Alice' is enrolled already; set replace to re-enroll",
        )
        code, message = await code_of(enroll(stub, "Two", 8))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "more than one voice" in message
        code, message = await code_of(enroll(stub, "Carol", 2))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "1.5 s of speech" in message
        code, message = await code_of(enroll(stub, "SPEAKER_03", 4))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("name:")
        await enroll(stub, "Bob", 5)

        listed = await stub.ListSpeakers(spb.ListSpeakersRequest())
        assert [s.name for s in listed.speakers] == ["Alice", "Bob"]
        assert not listed.speakers[0].embedding
        listed = await stub.ListSpeakers(spb.ListSpeakersRequest(include_embeddings=True))
        assert len(listed.speakers[1].embedding) == 3

        await stub.DeleteSpeaker(spb.DeleteSpeakerRequest(name="Bob"))
        assert (await code_of(stub.DeleteSpeaker(spb.DeleteSpeakerRequest(name="Bob"))))[
            0
        ] == grpc.StatusCode.NOT_FOUND
        listed = await stub.ListSpeakers(spb.ListSpeakersRequest())
        assert [s.name for s in listed.speakers] == ["Alice"]


async def process(h: object, **options: object) -> pb.ProcessResult:
    request = pb.ProcessRequest(audio=wav_bytes(10), options=pb.ProcessOptions(**options))  # type: ignore[arg-type]
    events = [e async for e in h.stub.Process(request)]  # type: ignore[attr-defined]
    return events[-1].result  # type: ignore[no-any-return]


async def test_known_speakers_take_their_names_and_the_others_stay_anonymous(
    tmp_path: Path,
) -> None:
    diarizer = Voices()
    async with harness(FakeTranscriber(), diarizer, tmp_path) as h:
        stub = spb_grpc.SpeakersStub(h.channel)
        await enroll(stub, "Alice", 4)
        await enroll(stub, "Bob", 5)

        plain = await process(h)
        assert {s.speaker for s in plain.segments} == {"SPEAKER_00", "SPEAKER_01"}
        assert not diarizer.options[-1].return_embeddings

        named = await process(h, all_known_speakers=True)
        assert {s.speaker for s in named.segments} == {"Alice", "SPEAKER_01"}
        assert {t.speaker for t in named.diarization_turns} == {"Alice", "SPEAKER_01"}
        alice = next(s for s in named.speakers if s.speaker == "Alice")
        assert alice.known_speaker_similarity == pytest.approx(0.9936, abs=1e-3)
        assert not alice.embedding  # not asked for

        only_bob = await process(h, known_speakers=["Bob"], return_embeddings=True)
        assert {s.speaker for s in only_bob.segments} == {"SPEAKER_00", "SPEAKER_01"}
        assert [len(s.embedding) for s in only_bob.speakers] == [3, 3]

        code, message = await code_of(process(h, known_speakers=["Dave"]))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert message == "options.known_speakers: 'Dave' is not enrolled (enrolled: Alice, Bob)"
        jobs = jobs_grpc.JobsStub(h.channel)
        request = jpb.SubmitJobRequest(
            audio=wav_bytes(1), options=pb.ProcessOptions(known_speakers=["Dave"])
        )
        assert (await code_of(jobs.SubmitJob(request)))[0] == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_jobs_own_reference_names_a_voice_without_enrolling_it(tmp_path: Path) -> None:
    async with harness(FakeTranscriber(), Voices(), tmp_path) as h:
        zoe = pb.KnownSpeakerReference(name="Zoe", audio=wav_bytes(4))  # Alice's voice
        result = await process(h, known_speaker_references=[zoe])
        assert {s.speaker for s in result.segments} == {"Zoe", "SPEAKER_01"}
        listed = await spb_grpc.SpeakersStub(h.channel).ListSpeakers(spb.ListSpeakersRequest())
        assert not listed.speakers  # nothing stored

        two = pb.KnownSpeakerReference(name="Two", audio=wav_bytes(8))
        code, message = await code_of(process(h, known_speaker_references=[two]))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert message.startswith("options.known_speaker_references[0].audio: holds more than")
        same = [zoe, pb.KnownSpeakerReference(name="Zoe", audio=wav_bytes(5))]
        code, message = await code_of(process(h, known_speaker_references=same))
        assert message == "options.known_speaker_references[1].name: 'Zoe' is given twice"


async def test_a_diarizer_that_is_down_leaves_speakers_anonymous_not_the_job_failed(
    tmp_path: Path,
) -> None:
    down = Voices(fail=Unavailable("diarizer: unavailable at fake:2"))
    async with harness(FakeTranscriber(), down, tmp_path) as h:
        zoe = pb.KnownSpeakerReference(name="Zoe", audio=wav_bytes(4))
        result = await process(h, known_speaker_references=[zoe])
        assert result.text and {w.code for w in result.warnings} == {"diarization_failed"}
        code, _ = await code_of(
            process(h, known_speaker_references=[zoe], require_diarization=True)
        )
        assert code == grpc.StatusCode.UNAVAILABLE


@dataclass
class SlowReferences(Voices):
    """Embeds a job's reference only once `release` is set; the job's own audio at once."""

    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def diarize(
        self, audio: AudioSource, options: DiarizationOptions
    ) -> AsyncIterator[DiarizationEvent]:
        if round(audio.duration_seconds) == 4:
            await self.release.wait()
        async for event in super().diarize(audio, options):
            yield event


async def test_transcription_and_diarization_do_not_wait_for_the_known_voices(
    tmp_path: Path,
) -> None:
    diarizer = SlowReferences()
    async with harness(FakeTranscriber(), diarizer, tmp_path) as h:
        zoe = pb.KnownSpeakerReference(name="Zoe", audio=wav_bytes(4))  # Alice's voice
        options = pb.ProcessOptions(known_speaker_references=[zoe])
        call = h.stub.Process(pb.ProcessRequest(audio=wav_bytes(10), options=options))
        seen: list[str] = []
        async with asyncio.timeout(30):  # before, the job waited for the voices: forever here
            async for event in call:
                seen.append(event.WhichOneof("event") or "")
                done = event.progress.transcription_done and event.progress.diarization_done
                if event.HasField("progress") and done:
                    break
        # every transcript segment and the turns came while the reference was unresolved
        assert seen.count("segment") == 10 and "attributed_segment" not in seen
        diarizer.release.set()
        rest = [event async for event in call]
    speakers = {e.attributed_segment.speaker for e in rest if e.HasField("attributed_segment")}
    assert speakers == {"Zoe", "SPEAKER_01"}
    assert {s.speaker for s in rest[-1].result.segments} == {"Zoe", "SPEAKER_01"}
