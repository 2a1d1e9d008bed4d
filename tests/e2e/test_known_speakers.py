"""Known speakers with the real diarizer (a `whospoke-diarizer` process): the Asterisk
voices enrolled from prompts the conversation does not use are named in it, and a voice
not enrolled stays anonymous.

The shares of each voice's speech that carry its name are bounded by the diarization
itself (bench/speakers_bench.py: every speaker takes the right name, and 95.4 % of
Allison's and 96.7 % of June's speech is under it; the rest is the diarization's
error); the bounds here leave 5-6 points for other CPUs' kernels.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from pyannote.core import Annotation, Segment

from bench.inputs import VOICES, Input, conversation
from orchestrator.backends import BackendSettings, GrpcDiarizer
from tests.fakes import FakeTranscriber, harness
from whospoke.common.audio import SAMPLE_RATE, wav_bytes
from whospoke.common.config import ServerConfig
from whospoke.common.procs import ServiceProcess
from whospoke.evaluation import asterisk_prompts
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import speakers_pb2 as spb
from whospoke.v1 import speakers_pb2_grpc as spb_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.models]


def enrollment(lang: str) -> bytes:
    """Prompts 13-20 of a language (the conversation speaks 1-12), half a second apart."""
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    prompts = asterisk_prompts(lang, 20)[12:20]
    return wav_bytes(np.concatenate([x for p in prompts for x in (p.audio, gap)]))


def named(result: pb.ProcessResult, talk: Input) -> dict[str, dict[str, float]]:
    """For each reference voice: seconds of its speech under each result label."""
    hypothesis = Annotation()
    for turn in result.exclusive_turns:
        hypothesis[Segment(turn.start_seconds, turn.end_seconds)] = turn.speaker
    shares: dict[str, dict[str, float]] = {}
    for person in talk.reference.labels():
        speech = talk.reference.label_timeline(person)
        shares[person] = {
            label: hypothesis.label_timeline(label).crop(speech).duration() / speech.duration()
            for label in hypothesis.labels()
        }
    return shares


@pytest.fixture(scope="module")
def talk() -> Input:
    return conversation()


async def process(stub: object, talk: Input) -> pb.ProcessResult:
    options = pb.ProcessOptions(skip_transcription=True, all_known_speakers=True)
    request = pb.ProcessRequest(audio=wav_bytes(talk.audio), options=options)
    events = [e async for e in stub.Process(request, timeout=900)]  # type: ignore[attr-defined]
    return events[-1].result  # type: ignore[no-any-return]


@pytest.fixture
async def diarizer() -> AsyncIterator[GrpcDiarizer]:
    service = ServiceProcess.start("diarizer", ["--threads", "2"])
    try:
        await service.wait_serving(within=180)
        client = GrpcDiarizer(BackendSettings(service.address))
        yield client
        await client.close()
    finally:
        assert service.stop() == 0, service.log()


async def test_enrolled_voices_are_named_and_others_stay_anonymous(
    diarizer: GrpcDiarizer, talk: Input, tmp_path: Path
) -> None:
    allison, june = VOICES["en"], VOICES["fr"]
    server = ServerConfig(port=0, max_message_bytes=32 << 20)  # the talk inline: 10.6 MB
    async with harness(FakeTranscriber(), diarizer, tmp_path, server=server) as h:
        speakers = spb_grpc.SpeakersStub(h.channel)
        for name, lang in (("Allison", "en"), ("June", "fr")):
            voice = await speakers.EnrollSpeaker(
                spb.EnrollSpeakerRequest(name=name, audio=enrollment(lang)), timeout=300
            )
            assert voice.speech_seconds > 10 and len(voice.embedding) == 192

        result = await process(h.stub, talk)
        shares = named(result, talk)
        assert {s.speaker for s in result.speakers} == {"Allison", "June"}
        assert shares[allison]["Allison"] >= 0.90, shares
        assert shares[june]["June"] >= 0.90, shares
        assert all(s.known_speaker_similarity >= 0.8 for s in result.speakers)

        await speakers.DeleteSpeaker(spb.DeleteSpeakerRequest(name="June"))
        result = await process(h.stub, talk)
        shares = named(result, talk)
        her_label = max(shares[june], key=shares[june].__getitem__)
        assert her_label.startswith("SPEAKER_"), shares  # June, not enrolled: anonymous
        assert shares[june].get("Allison", 0.0) <= 0.09, shares
        assert shares[allison]["Allison"] >= 0.90, shares
