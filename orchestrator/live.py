"""A live stream (`ProcessStream`): audio in as it is captured, events out as they happen.

The stream's audio goes to both backends as it arrives (`LiveAudio`), the
transcriber in its live mode (each utterance decoded as soon as it ends) and the
diarizer with provisional turns (`DiarizationConfig.live_turns`). Transcript
segments go out at once with provisional speakers (`orchestrator.live_view`);
when the client half-closes, the backends finish as they do for a file and the
stream ends with the same merge and result as `Process`.

A live stream cannot wait in a queue, so it takes a job slot at once or fails,
and `max_live_streams` bounds how many of the slots live streams hold. One that
the backends cannot keep up with (the machine is overloaded) is warned once its
lag behind the received audio passes half of `max_lag`, and ended with
RESOURCE_EXHAUSTED past `max_lag`, rather than drifting further behind.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.domain import JobOptions, LiveTurns
from orchestrator.jobs import JobEvent, JobRunner, StageStarted
from orchestrator.live_audio import LiveAudio, PcmConverter, PcmFormat
from orchestrator.live_decode import StreamDecoder
from orchestrator.live_view import LiveView
from orchestrator.options import options_from_pb
from orchestrator.progress import JobWarning, RunState
from orchestrator.spool import BYTES_PER_SAMPLE
from orchestrator.streams import interleave
from whospoke.common.audio import SAMPLE_RATE
from whospoke.common.errors import InvalidArgument, ResourceExhausted
from whospoke.contract.diarization import live_latency
from whospoke.contract.transcription import Segment
from whospoke.v1 import orchestrator_pb2 as pb


@dataclass(frozen=True)
class LiveLimits:
    max_streams: int = 4
    """Live streams at once (each also holds a job slot)."""
    max_lag_seconds: float = 60.0
    """Backends this far behind the received audio end the stream."""
    max_seconds: float = 4 * 3600.0
    """Longest stream."""


class LiveStreams:
    """Runs live streams on a job runner, within their limits."""

    def __init__(self, runner: JobRunner, spool_dir: Path, limits: LiveLimits) -> None:
        self._runner = runner
        self._spool_dir = spool_dir
        self.limits = limits
        self.running = 0

    async def options(self, config: pb.LiveStreamConfig) -> tuple[JobOptions, PcmFormat]:
        """The stream's options (live modes on) and audio format, checked."""
        fmt = PcmFormat.from_pb(config)
        options = options_from_pb(config.options)
        latency = live_latency(config.speaker_latency_seconds, "config.speaker_latency_seconds")
        options = replace(
            options,
            transcription=replace(options.transcription, live=True),
            diarization=replace(options.diarization, live_turns=True, live_latency_seconds=latency),
        )
        await self._runner.check(options)
        return options, fmt

    async def run(
        self, requests: AsyncIterator[pb.ProcessStreamRequest], config: pb.LiveStreamConfig
    ) -> AsyncIterator[JobEvent]:
        """The stream's events while `requests` (after the config) bring its audio."""
        options, fmt = await self.options(config)
        if self.running >= self.limits.max_streams:
            raise ResourceExhausted(
                f"server busy: {self.running} live streams (the limit); retry later"
            )
        self.running += 1
        path = self._spool_dir / f"{secrets.token_hex(8)}.pcm"
        audio = LiveAudio(path, self.limits.max_seconds)
        try:
            streams: dict[str, AsyncIterator[JobEvent | None]] = {
                "audio": _fed(requests, audio, converter(fmt)),
                "job": run_live(self._runner, audio, options, self.limits.max_lag_seconds),
            }
            async for _, event in interleave(streams):
                if event is not None:
                    yield event
        finally:
            self.running -= 1
            await audio.remove()


def converter(fmt: PcmFormat) -> PcmConverter | StreamDecoder:
    """What turns the stream's messages into 16 kHz mono s16le."""
    return StreamDecoder() if fmt.encoding == pb.ENCODED_STREAM else PcmConverter(fmt)


async def _fed(
    requests: AsyncIterator[pb.ProcessStreamRequest],
    audio: LiveAudio,
    converter: PcmConverter | StreamDecoder,
) -> AsyncIterator[None]:
    """Moves the client's audio into `audio`, converted (in a worker thread: an encoded
    stream's decoder may take a moment); None after each message."""
    try:
        async for request in requests:
            if request.WhichOneof("request") != "audio":
                raise InvalidArgument("config: only the first message carries a config; send audio")
            pcm = await asyncio.to_thread(converter.convert, request.audio)
            if (audio.samples + len(pcm) // BYTES_PER_SAMPLE) / SAMPLE_RATE > audio.max_seconds:
                raise InvalidArgument(
                    f"audio: the stream is longer than the {audio.max_seconds:.0f} s "
                    "this server accepts"
                )
            await audio.append(pcm)
            yield None
        await audio.append(await asyncio.to_thread(converter.flush))
        await audio.close()
    finally:
        converter.close()


class LagGuard:
    """How far the backends are behind the audio received: a warning, then an error."""

    def __init__(self, max_lag: float, options: JobOptions) -> None:
        self._max_lag = max_lag
        self._options = options
        self._warned = False

    def check(self, received: float, state: RunState) -> list[JobWarning]:
        done = [
            seconds
            for seconds, skipped in (
                (state.transcribed, self._options.skip_transcription),
                (state.diarized, self._options.skip_diarization),
            )
            if not skipped
        ]
        lag = received - min(done, default=received)
        if lag > self._max_lag:
            raise ResourceExhausted(
                f"the live stream fell {lag:.0f} s behind its audio (limit "
                f"{self._max_lag:.0f} s): the server is overloaded; retry later"
            )
        if lag <= self._max_lag / 2 or self._warned:
            return []
        self._warned = True
        return [
            JobWarning(
                "live_lag",
                f"processing is {lag:.0f} s behind the audio; the stream ends at "
                f"{self._max_lag:.0f} s behind",
                max(0.0, received - lag),
                received,
            )
        ]


async def run_live(
    runner: JobRunner, audio: LiveAudio, options: JobOptions, max_lag: float
) -> AsyncIterator[JobEvent]:
    """A live stream's events: live segments and speaker updates while audio arrives,
    then the result as `JobRunner.run` gives it."""
    ticket = runner.limiter.ticket()
    try:
        if not ticket.granted:
            raise ResourceExhausted("server busy: no job slot free for a live stream; retry later")
        state = RunState(time.perf_counter(), decode_done=time.perf_counter())
        state.started, state.decode.done = state.decode_done, True
        view, lag = LiveView(audio), LagGuard(max_lag, options)
        async for event in runner.fan_out(audio, options, state):
            if isinstance(event, LiveTurns):
                for update in view.turns_arrived(event):
                    yield update
            elif isinstance(event, Segment):
                yield view.segment(event)
            else:
                if isinstance(event, JobWarning):
                    state.warnings.append(event)
                yield event
            for warning in lag.check(audio.duration_seconds, state):
                state.warnings.append(warning)
                yield warning
        yield StageStarted("merging", state.audio_seconds)
        for update in view.final(state.diarization.exclusive_turns):
            yield update
        async for out in runner.finish(options, state, state.decode_started, 0.0):
            yield out
    finally:
        ticket.release()
