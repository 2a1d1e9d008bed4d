"""`ProcessStream`: live audio in, live segments and speaker updates out, then the result.

A real orchestrator server with fake backends (one segment per second of audio,
two speakers alternating every half second). The tests send audio only after the
events they wait for, so that what they see never depends on timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from tests.fakes import FakeDiarizer, FakeTranscriber, harness, wav_bytes
from tests.media import encoded
from whospoke.common.audio import SAMPLE_RATE
from whospoke.common.config import ServerConfig
from whospoke.v1 import orchestrator_pb2 as pb

CONFIG = pb.LiveStreamConfig(encoding=pb.PCM_S16LE, sample_rate_hz=SAMPLE_RATE)


def pcm(seconds: float) -> bytes:
    """`seconds` of a tone, 16 kHz mono s16le."""
    tone = np.sin(np.arange(int(seconds * SAMPLE_RATE)) / 8) * 8000
    return tone.astype("<i2").tobytes()


class LiveCall:
    """A `ProcessStream` call whose requests the test sends one by one."""

    def __init__(self, stub: Any, config: pb.LiveStreamConfig = CONFIG) -> None:
        self._requests: asyncio.Queue[pb.ProcessStreamRequest | None] = asyncio.Queue()
        self._requests.put_nowait(pb.ProcessStreamRequest(config=config))
        self.call = stub.ProcessStream(self._sent(), timeout=20)
        self.events: list[pb.ProcessEvent] = []

    async def _sent(self) -> AsyncIterator[pb.ProcessStreamRequest]:
        while (request := await self._requests.get()) is not None:
            yield request

    def send(self, audio: bytes, message_seconds: float = 0.25) -> None:
        step = int(message_seconds * SAMPLE_RATE) * 2
        for i in range(0, len(audio), step):
            self._requests.put_nowait(pb.ProcessStreamRequest(audio=audio[i : i + step]))

    def close(self) -> None:
        self._requests.put_nowait(None)

    async def until(self, kind: str) -> pb.ProcessEvent:
        """Read events up to the first of `kind`."""
        while True:
            read = await self.call.read()
            assert read is not grpc.aio.EOF, f"the stream ended before a {kind} event"
            event: pb.ProcessEvent = read
            self.events.append(event)
            if event.WhichOneof("event") == kind:
                return event

    def of(self, kind: str) -> list[Any]:
        return [getattr(e, kind) for e in self.events if e.WhichOneof("event") == kind]


async def test_segments_come_while_audio_is_sent_and_the_result_is_process_s(
    tmp_path: Path,
) -> None:
    transcriber, diarizer = FakeTranscriber(), FakeDiarizer()
    async with harness(transcriber, diarizer, tmp_path) as h:
        live = LiveCall(h.stub)
        live.send(pcm(1.0))
        first = (await live.until("live_segment")).live_segment  # before any more audio
        assert first.index == 0 and first.segment.text == "one two"
        assert first.segment.language == "" and first.latency_seconds >= 0
        live.send(pcm(3.0))
        live.close()
        result = (await live.until("result")).result
        assert await live.call.read() is grpc.aio.EOF
        process = [e async for e in h.stub.Process(pb.ProcessRequest(audio=wav_bytes(4)))]

    assert transcriber.options[0].live and diarizer.options[0].live_turns
    assert not transcriber.options[1].live and not diarizer.options[1].live_turns
    expected = process[-1].result
    assert [(s.speaker, s.text) for s in result.segments] == [
        (s.speaker, s.text) for s in expected.segments
    ]
    assert result.audio_duration_seconds == expected.audio_duration_seconds == 4.0
    segments = live.of("live_segment")
    assert [s.index for s in segments] == [0, 1, 2, 3]
    # The client's view, with every update applied, has the result's speakers.
    view = {s.index: [w.speaker for w in s.segment.words] for s in segments}
    for update in live.of("speaker_update"):
        view[update.index] = list(update.word_speakers)
    assert [w for i in sorted(view) for w in view[i]] == [
        w.speaker for s in result.segments for w in s.words
    ]
    assert live.of("attributed_segment") == list(result.segments)


async def test_resampled_stereo_floats(tmp_path: Path) -> None:
    """48 kHz stereo f32 reaches the backends as 16 kHz mono: 3 s give 3 segments."""
    config = pb.LiveStreamConfig(encoding=pb.PCM_F32LE, sample_rate_hz=48000, channels=2)
    tone = np.sin(np.arange(3 * 48000) / 24).astype("<f4") * 0.25
    stereo = np.repeat(tone, 2).tobytes()
    async with harness(FakeTranscriber(), FakeDiarizer(), tmp_path) as h:
        live = LiveCall(h.stub, config)
        for i in range(0, len(stereo), 48000 * 8 // 5):
            live._requests.put_nowait(pb.ProcessStreamRequest(audio=stereo[i : i + 48000 * 8 // 5]))
        live.close()
        result = (await live.until("result")).result
    assert abs(result.audio_duration_seconds - 3.0) < 0.01
    assert len(live.of("live_segment")) == 3


@pytest.mark.parametrize(("container", "codec"), [("webm", "libopus"), ("ogg", "libopus")])
async def test_an_encoded_stream_is_decoded_as_its_bytes_arrive(
    tmp_path: Path, container: str, codec: str
) -> None:
    """WebM/Opus (as a browser's MediaRecorder sends it) and Ogg/Opus, cut into
    messages anywhere: the first second's bytes give a segment before the rest is
    sent, and the result is `Process`'s on the same file."""
    data = encoded(container, codec, seconds=4.0, rate=48000)
    config = pb.LiveStreamConfig(encoding=pb.ENCODED_STREAM)
    half = len(data) // 2
    async with harness(FakeTranscriber(), FakeDiarizer(), tmp_path) as h:
        live = LiveCall(h.stub, config)
        for i in range(0, half, 1000):
            live._requests.put_nowait(pb.ProcessStreamRequest(audio=data[i : min(i + 1000, half)]))
        await live.until("live_segment")  # before the second half is sent
        live._requests.put_nowait(pb.ProcessStreamRequest(audio=data[half:]))
        live.close()
        result = (await live.until("result")).result
        process = [e async for e in h.stub.Process(pb.ProcessRequest(audio=data))]
    expected = process[-1].result
    assert abs(result.audio_duration_seconds - expected.audio_duration_seconds) < 0.05
    assert [(s.speaker, s.text) for s in result.segments] == [
        (s.speaker, s.text) for s in expected.segments
    ]
    assert len(live.of("live_segment")) == 4


async def test_an_undecodable_encoded_stream_is_invalid_argument_naming_audio(
    tmp_path: Path,
) -> None:
    transcriber, diarizer = FakeTranscriber(), FakeDiarizer()
    config = pb.LiveStreamConfig(encoding=pb.ENCODED_STREAM)
    async with harness(transcriber, diarizer, tmp_path) as h:
        live = LiveCall(h.stub, config)
        live._requests.put_nowait(pb.ProcessStreamRequest(audio=b"not a container " * 400))
        live.close()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.until("result")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "audio: cannot decode the encoded stream" in (caught.value.details() or "")


@pytest.mark.parametrize(
    ("first", "field"),
    [
        (pb.ProcessStreamRequest(audio=pcm(0.5)), "config:"),
        (
            pb.ProcessStreamRequest(config=pb.LiveStreamConfig(sample_rate_hz=16000)),
            "config.encoding",
        ),
        (
            pb.ProcessStreamRequest(
                config=pb.LiveStreamConfig(encoding=pb.PCM_S16LE, sample_rate_hz=4000)
            ),
            "config.sample_rate_hz",
        ),
        (
            pb.ProcessStreamRequest(
                config=pb.LiveStreamConfig(
                    encoding=pb.PCM_S16LE,
                    sample_rate_hz=16000,
                    options=pb.ProcessOptions(num_speakers=-1),
                )
            ),
            "options.num_speakers",
        ),
    ],
)
async def test_a_bad_first_message_is_invalid_argument_naming_the_field(
    tmp_path: Path, first: pb.ProcessStreamRequest, field: str
) -> None:
    async with harness(FakeTranscriber(), FakeDiarizer(), tmp_path) as h:
        call = h.stub.ProcessStream(iter([first]), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (pb.ProcessStreamRequest(audio=b"\x00\x01\x02"), "audio: 3 bytes"),
        (pb.ProcessStreamRequest(audio=pcm(10.5)), "audio: 10.5 s"),
        (pb.ProcessStreamRequest(config=CONFIG), "config: only the first"),
    ],
)
async def test_wrong_audio_ends_the_stream_and_both_backend_calls(
    tmp_path: Path, message: pb.ProcessStreamRequest, field: str
) -> None:
    transcriber, diarizer = FakeTranscriber(), FakeDiarizer()
    async with harness(transcriber, diarizer, tmp_path) as h:
        live = LiveCall(h.stub)
        live.send(pcm(1.0))
        await live.until("live_segment")
        live._requests.put_nowait(message)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.until("result")
        await asyncio.wait_for(transcriber.cancelled.wait(), 5)
        await asyncio.wait_for(diarizer.cancelled.wait(), 5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")


async def test_a_client_that_stops_sending_gets_deadline_exceeded(tmp_path: Path) -> None:
    transcriber, diarizer = FakeTranscriber(), FakeDiarizer()
    server = ServerConfig(port=0, stream_idle_seconds=0.5)
    async with harness(transcriber, diarizer, tmp_path, server=server) as h:
        live = LiveCall(h.stub)
        live.send(pcm(1.0))  # then nothing, and no half-close
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.until("result")
        await asyncio.wait_for(transcriber.cancelled.wait(), 5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "ProcessStreamRequest" in (caught.value.details() or "")


async def test_live_streams_have_their_own_limit_and_take_job_slots(tmp_path: Path) -> None:
    async with harness(
        FakeTranscriber(), FakeDiarizer(), tmp_path, max_concurrent_jobs=2, max_live_streams=1
    ) as h:
        first = LiveCall(h.stub)
        first.send(pcm(1.0))
        await first.until("live_segment")
        second = LiveCall(h.stub)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await second.until("result")
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "live streams" in (caught.value.details() or "")
        status = await h.stub.GetStatus(pb.GetStatusRequest())
        assert status.jobs_running == 1
        first.close()
        await first.until("result")


async def test_a_stream_the_backends_cannot_keep_up_with_is_warned_then_ended(
    tmp_path: Path,
) -> None:
    stuck = asyncio.Event()  # never set: the transcriber stops after its first second
    transcriber = FakeTranscriber(hold=stuck, hold_from=1)
    async with harness(transcriber, FakeDiarizer(), tmp_path, max_live_lag_seconds=2.0) as h:
        live = LiveCall(h.stub)
        live.send(pcm(6.0), message_seconds=0.5)
        warning = (await live.until("warning")).warning
        assert warning.code == "live_lag"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.until("result")
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "behind its audio" in (caught.value.details() or "")
