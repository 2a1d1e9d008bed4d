"""The gateway's OpenAI-compatible API as the official `openai` SDK sees it.

A real gateway (uvicorn on a socket) in front of a real orchestrator with fake backends:
every `response_format`, translations, the served models, streaming (events as the
orchestrator produces them, not at the end) and the gateway's own uploads of large files.
Subtitles are parsed with FFmpeg, as the CLI's are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
from openai.types.audio import (
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
    TranscriptionTextSegmentEvent,
)

from orchestrator.config import BackendsConfig, OrchestratorConfig, UploadsConfig
from orchestrator.domain import AudioSource, BackendHealth, BackendInfo, TranscriptEvent
from tests.fakes import FakeDiarizer, FakeTranscriber, serving, wav_bytes
from tests.gateway import GatewayServer, gateway_server
from tests.unit.test_formats import subtitles
from whospoke.common.config import ServerConfig
from whospoke.contract.transcription import TranscriptionOptions

SPEAKERS = {"SPEAKER_00", "SPEAKER_01"}
WITHIN = 5.0
"""Seconds a test waits for an event that comes at once when all is well."""


@dataclass
class Transcriber(FakeTranscriber):
    """The fake transcriber, saying which model it serves and when it starts a job."""

    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def transcribe(
        self, audio: AudioSource, options: TranscriptionOptions
    ) -> AsyncIterator[TranscriptEvent]:
        self.started.set()
        async for event in super().transcribe(audio, options):
            yield event

    async def health(self) -> BackendHealth:
        info = BackendInfo(("fake-whisper",), "cpu")
        return BackendHealth("transcriber", "fake:1", True, info=info)


@dataclass
class Stack:
    client: openai.AsyncOpenAI
    gateway: GatewayServer
    transcriber: Transcriber
    uploads: Path


@asynccontextmanager
async def stack(
    tmp: Path,
    transcriber: Transcriber | None = None,
    server: ServerConfig | None = None,
    api_key: str = "x",
    limits: dict[str, Any] | None = None,
    upload_bytes: int = 8 << 20,
    **settings: Any,
) -> AsyncIterator[Stack]:
    """Orchestrator (fake backends, `limits` as `OrchestratorConfig` fields, uploads up to
    `upload_bytes`), gateway (`settings` as `GatewayConfig` fields) and an SDK client that
    does not retry."""
    transcriber = transcriber or Transcriber()
    config = OrchestratorConfig(
        server=server or ServerConfig(port=0),
        backends=BackendsConfig(),
        uploads=UploadsConfig(directory=tmp, max_bytes=upload_bytes, ttl_seconds=600),
        **(limits or {}),
    )
    async with (
        serving(config, transcriber, FakeDiarizer()) as port,
        gateway_server(port, **settings) as gateway,
    ):
        client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=api_key, max_retries=0)
        async with client:
            yield Stack(client, gateway, transcriber, tmp)


def audio_processed(s: Stack) -> float | None:
    """The gateway's `whospoke_audio_processed_seconds` counter."""
    sample = "whospoke_audio_processed_seconds_total"
    return s.gateway.state.metrics.registry.get_sample_value(sample, {"service": "gateway"})


def uploads_left(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.suffix in (".bin", ".json", ".part"))


async def test_json_text_srt_and_vtt(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        audio = s.client.audio.transcriptions
        plain = await audio.create(file=("a.wav", wav_bytes(3)), model="whisper-1")
        text = await audio.create(
            file=("a.wav", wav_bytes(3)), model="whisper-1", response_format="text"
        )
        bodies = {
            fmt: await audio.create(
                file=("a.wav", wav_bytes(3)), model="whisper-1", response_format=fmt
            )
            for fmt in ("srt", "vtt")
        }
        assert audio_processed(s) == 4 * 3.0
    assert plain.text == "one two one two one two"
    assert plain.usage is not None and plain.usage.type == "duration"
    assert plain.usage.seconds == 3
    assert text == "one two one two one two\n"
    for fmt, body in bodies.items():
        path = tmp_path / f"out.{fmt}"
        path.write_text(body)
        cues = subtitles(path)
        assert [(start, end) for start, end, _ in cues] == [(0, 0.9), (1, 1.9), (2, 2.9)]
        assert all("one two" in cue for _, _, cue in cues)


async def test_verbose_json_words_lie_inside_their_segments(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        verbose = await s.client.audio.transcriptions.create(
            file=("a.wav", wav_bytes(3)),
            model="whisper-1",
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
    assert verbose.language == "english" and verbose.duration == 3.0
    assert [(seg.start, seg.end) for seg in verbose.segments or []] == [
        (0, 0.9),
        (1, 1.9),
        (2, 2.9),
    ]
    words = verbose.words or []
    assert [w.word for w in words] == ["one", "two"] * 3
    for word in words:
        (segment,) = [g for g in verbose.segments or [] if g.start <= word.start < g.end]
        assert segment.start <= word.start < word.end <= segment.end


async def test_diarized_json_gives_every_segment_a_speaker(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        diarized = await s.client.audio.transcriptions.create(
            file=("a.wav", wav_bytes(3)), model="whisper-1", response_format="diarized_json"
        )
    assert diarized.text == "one two one two one two"
    assert {seg.speaker for seg in diarized.segments} == SPEAKERS
    assert [seg.id for seg in diarized.segments] == [f"seg_{i}" for i in range(6)]
    assert [seg.text for seg in diarized.segments] == ["one", "two"] * 3
    assert all(seg.start < seg.end for seg in diarized.segments)


async def test_translation_asks_the_transcriber_to_translate(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        translated = await s.client.audio.translations.create(
            file=("a.wav", wav_bytes(2)), model="whisper-1"
        )
        tasks = [options.task for options in s.transcriber.options]
    assert translated.text == "one two one two"
    assert tasks == ["translate"]


async def test_multilingual_is_an_extra_field_the_sdk_passes(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        for extra in ({"multilingual": "true"}, {}):
            await s.client.audio.transcriptions.create(
                file=("a.wav", wav_bytes(1)), model="whisper-1", extra_body=extra
            )
        asked = [options.multilingual for options in s.transcriber.options]
    assert asked == [True, False]


async def test_models_are_the_transcribers_with_the_whisper_alias(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        listed = [m.id async for m in s.client.models.list()]
        alias = await s.client.models.retrieve("whisper-1")
        served = await s.client.models.retrieve("fake-whisper")
        by_name = await s.client.audio.transcriptions.create(
            file=("a.wav", wav_bytes(1)), model="fake-whisper"
        )
    assert listed == ["fake-whisper", "whisper-1"]
    assert (alias.model_extra or {}).get("alias_of") == "fake-whisper"
    assert served.id == "fake-whisper" and served.owned_by == "whospoke"
    assert by_name.text == "one two"


async def test_stream_sends_the_first_delta_while_later_audio_is_untranscribed(
    tmp_path: Path,
) -> None:
    hold = asyncio.Event()
    async with stack(tmp_path, Transcriber(hold=hold, hold_from=1)) as s:
        stream = await s.client.audio.transcriptions.create(
            file=("a.wav", wav_bytes(3)), model="whisper-1", stream=True
        )
        events = aiter(stream)
        async with asyncio.timeout(WITHIN):
            first = await anext(events)
        # Seconds 1 and 2 wait for `hold`: this delta cannot have waited for the end.
        assert isinstance(first, TranscriptionTextDeltaEvent) and first.delta == " one two"
        hold.set()
        rest = [event async for event in events]
        assert audio_processed(s) == 3.0, "streamed audio counts too"
    assert [type(e) for e in rest] == [TranscriptionTextDeltaEvent] * 2 + [
        TranscriptionTextDoneEvent
    ]
    done = rest[-1]
    assert isinstance(done, TranscriptionTextDoneEvent)
    assert done.text == "one two one two one two"


async def test_diarized_stream_sends_segments_with_speakers_then_done(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        stream = await s.client.audio.transcriptions.create(
            file=("a.wav", wav_bytes(3)),
            model="whisper-1",
            response_format="diarized_json",
            stream=True,
        )
        events = [event async for event in stream]
    segments = [e for e in events if isinstance(e, TranscriptionTextSegmentEvent)]
    deltas = [e for e in events if isinstance(e, TranscriptionTextDeltaEvent)]
    assert isinstance(events[-1], TranscriptionTextDoneEvent)
    assert events[-1].text == "one two one two one two"
    assert len(deltas) == 3 and events.index(deltas[0]) < events.index(segments[-1])
    assert [seg.id for seg in segments] == [f"seg_{i}" for i in range(6)]
    assert {seg.speaker for seg in segments} == SPEAKERS
    assert [seg.text for seg in segments] == ["one", "two"] * 3


async def test_large_files_go_through_an_upload_that_is_deleted_after(tmp_path: Path) -> None:
    """Above `inline_bytes` the gateway uploads the file first; streaming or not, the upload
    exists while the job runs and is gone when the answer has been sent."""
    async with stack(tmp_path, Transcriber(hold_from=1), inline_bytes=1024) as s:
        s.transcriber.hold = asyncio.Event()
        stream = await s.client.audio.transcriptions.create(
            file=("a.wav", wav_bytes(2)), model="whisper-1", stream=True
        )
        events = aiter(stream)
        async with asyncio.timeout(WITHIN):
            await anext(events)
        during_stream = uploads_left(s.uploads)
        s.transcriber.hold.set()
        streamed = [event async for event in events]
        after_stream = uploads_left(s.uploads)

        s.transcriber.hold, s.transcriber.started = asyncio.Event(), asyncio.Event()
        plain = asyncio.create_task(
            s.client.audio.transcriptions.create(file=("a.wav", wav_bytes(2)), model="whisper-1")
        )
        async with asyncio.timeout(WITHIN):
            await s.transcriber.started.wait()
        during_plain = uploads_left(s.uploads)
        s.transcriber.hold.set()
        assert (await plain).text == "one two one two"
        after_plain = uploads_left(s.uploads)
    for during in (during_stream, during_plain):
        assert [Path(name).suffix for name in during] == [".bin", ".json"]
    assert during_stream != during_plain, "one upload per request"
    assert isinstance(streamed[-1], TranscriptionTextDoneEvent)
    assert after_stream == [] and after_plain == []
