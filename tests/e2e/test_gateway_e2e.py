"""The HTTP gateway end to end: the official `openai` SDK, the gateway, and the real services
(tiny.en, the embedded diarization models) on pyannote's sample.wav.

The services are the orchestrator tests' module stack (the same fixture, started once for
this module); the gateway runs in-process in front of that orchestrator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import openai
import pytest
from openai.types.audio import (
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
    TranscriptionTextSegmentEvent,
)

from tests.e2e import test_e2e_orchestrator as services
from tests.gateway import gateway_server
from whospoke.common.procs import ServiceProcess
from whospoke.evaluation import sample_path

pytestmark = [pytest.mark.e2e, pytest.mark.models]

stack = services.stack
orchestrator = services.orchestrator
SPEAKERS = {"SPEAKER_00", "SPEAKER_01"}
SLACK = 0.011
"""Seconds: the gateway rounds times to milliseconds."""


@asynccontextmanager
async def client(orchestrator: ServiceProcess) -> AsyncIterator[openai.AsyncOpenAI]:
    async with (
        gateway_server(orchestrator.port) as gateway,
        openai.AsyncOpenAI(
            base_url=gateway.url + "/v1", api_key="x", max_retries=0, timeout=600
        ) as sdk,
    ):
        yield sdk


def sample() -> tuple[str, bytes]:
    return ("sample.wav", sample_path().read_bytes())


async def test_diarized_json_names_the_two_speakers_of_every_segment(
    orchestrator: ServiceProcess,
) -> None:
    async with client(orchestrator) as sdk:
        diarized = await sdk.audio.transcriptions.create(
            file=sample(), model="whisper-1", response_format="diarized_json"
        )
    assert 29.9 < diarized.duration < 30.1
    assert {segment.speaker for segment in diarized.segments} == SPEAKERS
    assert all(segment.speaker in SPEAKERS for segment in diarized.segments)
    assert all(segment.start <= segment.end for segment in diarized.segments)
    assert len(diarized.text.split()) > 40, "30 s of conversation"


async def test_the_diarized_stream_is_live_and_ends_with_done(
    orchestrator: ServiceProcess,
) -> None:
    async with client(orchestrator) as sdk:
        stream = await sdk.audio.transcriptions.create(
            file=sample(), model="whisper-1", response_format="diarized_json", stream=True
        )
        events = [event async for event in stream]
    kinds = [type(event) for event in events]
    done = events[-1]
    assert isinstance(done, TranscriptionTextDoneEvent) and kinds.count(type(done)) == 1
    first_delta = kinds.index(TranscriptionTextDeltaEvent)
    last_segment = len(kinds) - 1 - kinds[::-1].index(TranscriptionTextSegmentEvent)
    # Deltas are the transcriber's segments as it finalises them; the attributed segments
    # need the diarization too: the first delta cannot come after the last of those.
    assert first_delta < last_segment < len(events) - 1
    assert kinds.count(TranscriptionTextDeltaEvent) >= 2
    segments = [e for e in events if isinstance(e, TranscriptionTextSegmentEvent)]
    assert {segment.speaker for segment in segments} == SPEAKERS
    assert [segment.id for segment in segments] == [f"seg_{i}" for i in range(len(segments))]
    assert " ".join(s.text for s in segments if s.text).split() == done.text.split()


async def test_verbose_json_words_lie_inside_their_segments(orchestrator: ServiceProcess) -> None:
    async with client(orchestrator) as sdk:
        verbose = await sdk.audio.transcriptions.create(
            file=sample(),
            model="whisper-1",
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
    segments, words = verbose.segments or [], verbose.words or []
    assert verbose.language == "english" and len(segments) >= 2 and len(words) > 40
    starts = [word.start for word in words]
    assert starts == sorted(starts)
    for word in words:
        assert any(s.start - SLACK <= word.start <= word.end <= s.end + SLACK for s in segments), (
            f"{word} is in no segment"
        )
