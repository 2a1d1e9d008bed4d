"""One `Process` job: wait for a slot, decode once, fan out to both backends, merge.

Transcription and diarization run concurrently on the same decoded audio; their
events are interleaved into one stream as they come. The known voices a job looks
for (its references need the diarizer's embeddings) are found alongside, so they
never delay the transcript; the turns wait for them only if they come first.
Leaving the stream early (client cancel, deadline, error) cancels both backend
calls. The audio is decoded into a spool file (`orchestrator.spool`) inside the
job's slot: decoding stops at the duration limit and when the job is cancelled,
and the slot is freed only once it has stopped.

Progress is reported as work is done, so that a client's display is truthful:
while decoding, every `DECODE_PROGRESS_SECONDS` (decoded against declared
duration); then on each backend event (audio committed by the transcriber,
analysed by the diarizer). Each stage's timer stops when it ends and a progress
event says so at once (`transcription_done`, `diarization_done`). Warnings the
transcriber raises about stretches of speech left without text are passed on
with their time range.

Once both a transcript segment and the diarizer's turns are known, the segment
goes out again with its speakers (`AttributedSegment`): when diarization ends
first, each segment is attributed as it arrives; when it ends last, all of them
are at that moment. These are the result's segments (see `orchestrator.progress`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from orchestrator.attributed import AttributedSegment
from orchestrator.domain import (
    AudioSource,
    DiarizationDone,
    DiarizerBackend,
    JobOptions,
    LiveTurns,
    Progressed,
    TranscriberBackend,
    TranscriptDone,
)
from orchestrator.live_view import LiveSegment, SpeakerUpdate
from orchestrator.merge import full_text
from orchestrator.pools import TranscriberPools, as_pools
from orchestrator.progress import (
    JobWarning,
    ProgressUpdate,
    RunState,
    VoicesFound,
    closing_warnings,
    progress,
)
from orchestrator.retry import retried_once
from orchestrator.speakers import KnownSpeakers
from orchestrator.spool import DecodeProgress, SpooledAudio, spool
from orchestrator.store.speakers import Voice
from orchestrator.streams import held, interleave
from whospoke.common.decode import Source as FileSource
from whospoke.common.errors import InvalidArgument, NotFound, WhospokeError
from whospoke.common.limiter import Limiter
from whospoke.contract.diarization import DiarizationOutput
from whospoke.contract.transcription import Segment, SpeechWarning
from whospoke.v1 import audio_pb2

logger = logging.getLogger(__name__)

DECODE_PROGRESS_SECONDS = 0.5
"""How often a progress event is sent while decoding."""

FIRST_SEGMENT_HOLD_SECONDS = 5.0
"""Longest a job holds its diarizer call for the first segment (`diarization_start`):
a file whose speech starts late, or a transcriber that is slow to answer, does not
leave the diarizer idle for long."""
FIRST_WORDS = (Segment, SpeechWarning, TranscriptDone)
"""Transcriber events that release a held diarizer: its first words, or that it has none."""


@dataclass(frozen=True)
class Queued:
    position: int


@dataclass(frozen=True)
class StageStarted:
    stage: str
    audio_seconds: float = 0.0


@dataclass(frozen=True)
class Timings:
    queued: float = 0.0
    decoding: float = 0.0
    transcription: float = 0.0
    diarization: float = 0.0
    merge: float = 0.0
    total: float = 0.0


@dataclass(frozen=True)
class JobResult:
    text: str
    segments: tuple[AttributedSegment, ...]
    transcription_segments: tuple[Segment, ...]
    diarization: DiarizationOutput
    language: str
    audio_seconds: float
    timings: Timings
    models: tuple[str, str, str]
    """(transcription, segmentation, embedding) model names."""
    warnings: tuple[JobWarning, ...] = ()
    """Every warning the job sent, in order, so a stored result keeps them."""
    devices: tuple[audio_pb2.DeviceStats, ...] = ()
    """GPU use of each backend that ran on a GPU, by backend name."""


JobEvent = (
    Queued
    | StageStarted
    | ProgressUpdate
    | Segment
    | AttributedSegment
    | JobWarning
    | JobResult
    | LiveSegment
    | SpeakerUpdate
)
"""What a job sends: attributed segments follow the transcript once the speakers are known."""
Source = Callable[[], FileSource]
"""Gives the file when the job starts (an upload may have been deleted while queued)."""


class JobRunner:
    def __init__(
        self,
        transcriber: TranscriberBackend | TranscriberPools,
        diarizer: DiarizerBackend,
        limiter: Limiter,
        spool_dir: Path,
        max_audio_seconds: float = float("inf"),
        diarization_start: str = "with-transcription",
    ) -> None:
        self.pools = as_pools(transcriber)
        self.hold_diarization = diarization_start == "after-first-segment"
        """Whether a file's diarizer call waits for the transcriber's first segment (up to
        `FIRST_SEGMENT_HOLD_SECONDS`): where both models share cores, the first words
        come sooner for about the same wall time. Never for live streams."""
        self.known: KnownSpeakers | None = None
        """Enrolled voices (set once the job store is open); None: none can be used."""
        self._diarizer = diarizer
        self.limiter = limiter
        self._spool_dir = spool_dir
        self._max_audio_seconds = max_audio_seconds

    async def run(self, source: Source, options: JobOptions) -> AsyncIterator[JobEvent]:
        """The job's events, ending with `JobResult`; errors propagate as our exceptions."""
        started = time.perf_counter()
        ticket = self.limiter.ticket()
        try:
            async for position in ticket.positions():
                yield Queued(position)
            queued = time.perf_counter() - started
            yield StageStarted("decoding")
            state = RunState(time.perf_counter())
            decoding = asyncio.ensure_future(self._decode(source, state.decode))
            try:
                async for update in _while_decoding(decoding, options, state):
                    yield update
                audio = decoding.result()
                state.decode_done = state.started = time.perf_counter()
                state.audio_seconds = audio.duration_seconds
                yield progress(options, state, state.started)
                async for event in self.fan_out(audio, options, state, self.hold_diarization):
                    if isinstance(event, JobWarning):
                        state.warnings.append(event)
                    if not isinstance(event, LiveTurns):  # only live streams get these
                        yield event
                yield StageStarted("merging", state.audio_seconds)
                async for event in self.finish(options, state, started, queued):
                    yield event
            finally:
                await _discard(decoding)
        finally:
            ticket.release()

    async def _decode(self, source: Source, decoded: DecodeProgress) -> SpooledAudio:
        try:
            audio = await spool(source, self._spool_dir, self._max_audio_seconds, decoded)
        except FileNotFoundError:
            raise NotFound(
                "upload_id: the upload was deleted or expired before its job started"
            ) from None
        if audio.samples == 0:
            await audio.remove()
            raise InvalidArgument("audio: the file holds no audio samples")
        return audio

    async def finish(
        self, options: JobOptions, state: RunState, started: float, queued: float
    ) -> AsyncIterator[JobEvent]:
        merge_start = time.perf_counter()
        segments = state.result_segments()
        for warning in closing_warnings(options, state):
            state.warnings.append(warning)
            yield warning
        models = await self._models(options, state)
        end = time.perf_counter()
        stages = state.started or end
        timings = Timings(
            queued=queued,
            decoding=(state.decode_done or end) - state.decode_started,
            transcription=(state.transcription_done or stages) - stages,
            diarization=(state.diarization_done or stages) - stages,
            merge=end - merge_start,
            total=end - started,
        )
        yield JobResult(
            text=full_text(segments),
            segments=tuple(segments),
            transcription_segments=tuple(state.segments),
            diarization=state.diarization,
            language=state.language,
            audio_seconds=state.audio_seconds,
            timings=timings,
            models=models,
            warnings=tuple(state.warnings),
            devices=tuple(sorted(state.devices, key=lambda d: d.backend)),
        )

    async def fan_out(
        self, audio: AudioSource, options: JobOptions, state: RunState, hold: bool = False
    ) -> AsyncIterator[JobEvent | LiveTurns]:
        """Both backends (and the lookup of known voices) at once, their events as they come;
        with `hold`, the diarizer's call once the transcriber has sent its first segment."""
        streams: dict[str, AsyncIterator[Any]] = {}
        first = asyncio.Event()
        if not options.skip_transcription:
            yield StageStarted("transcribing", state.audio_seconds)
            transcriber = await self.pools.pick(options.model)
            start = partial(transcriber.transcribe, audio, options.transcription)
            streams["transcriber"] = retried_once(start, "transcriber")
        if not options.skip_diarization:
            yield StageStarted("diarizing", state.audio_seconds)
            diarization = retried_once(
                partial(self._diarizer.diarize, audio, options.diarization), "diarizer"
            )
            if not options.require_diarization and not options.skip_transcription:
                diarization = _tolerant(diarization)
            if hold and "transcriber" in streams:
                diarization = held(diarization, first, FIRST_SEGMENT_HOLD_SECONDS)
            streams["diarizer"] = diarization
            if options.recognises:
                state.voices_known = False
                streams["voices"] = self._voices_found(options)
        async for name, event in interleave(streams):
            state.audio_seconds = audio.duration_seconds  # a live stream's grows
            if name == "transcriber" and isinstance(event, FIRST_WORDS):
                first.set()
            for out in self._handle(name, event, options, state, time.perf_counter()):
                yield out

    def _handle(
        self, name: str, event: Any, options: JobOptions, state: RunState, now: float
    ) -> list[JobEvent | LiveTurns]:
        """What the job sends for one backend event, with the state brought up to date."""
        if isinstance(event, LiveTurns):
            return [event]
        if isinstance(event, TranscriptDone | DiarizationDone) and event.device is not None:
            state.devices.append(event.device)
        if isinstance(event, VoicesFound):  # the turns may have been waiting for them
            return list(state.attribute(state.segments)) if state.found(event.voices) else []
        if isinstance(event, SpeechWarning):
            state.speech_warnings += 1
            state.transcribed = max(state.transcribed, event.end)  # decided up to there
            logger.info("transcriber warning %s at %.1f-%.1f s", event.code, event.start, event.end)
            return [JobWarning(event.code, event.message, event.start, event.end)]
        if isinstance(event, Segment):
            state.segments.append(event)
            state.transcribed = max(state.transcribed, event.end)
            return [event, *state.attribute([event])]  # with speakers once they are known
        out: list[JobEvent | LiveTurns] = []
        if isinstance(event, JobWarning):
            state.diarization_done, state.diarization_failed = now, True
            out.append(event)
        elif isinstance(event, TranscriptDone):
            state.language, state.transcription_model = event.language, event.model
            state.transcription_done, state.transcribed = now, state.audio_seconds
        elif isinstance(event, DiarizationDone):
            state.diarization_done, state.diarized = now, state.audio_seconds
            state.diarized_output(event.output, options)
        elif isinstance(event, Progressed) and name == "diarizer":
            state.diarized = max(state.diarized, event.seconds)
        elif isinstance(event, Progressed):
            state.transcribed = max(state.transcribed, event.seconds)
        out.append(progress(options, state, now))
        if isinstance(event, DiarizationDone):  # the segments so far get their speakers
            out += state.attribute(state.segments)
        return out

    async def _voices_found(self, options: JobOptions) -> AsyncIterator[VoicesFound]:
        yield VoicesFound(await self._voices(options))

    async def check(self, options: JobOptions) -> None:
        """Fail now (INVALID_ARGUMENT) for options naming what this server lacks."""
        await self.pools.check(options.model)
        if options.recognises and self.known is None:
            raise InvalidArgument("options.known_speakers: this server keeps no enrolled voices")
        if self.known is not None:
            await self.known.check(options)

    async def _voices(self, options: JobOptions) -> list[Voice]:
        """The known voices the job looks for. When they cannot be had (the diarizer or the
        store is down), the job goes on with anonymous speakers, as it goes on without
        speakers when diarization fails, unless diarization is required."""
        if self.known is None or not options.recognises:
            return []
        try:
            return await self.known.voices(options)
        except WhospokeError as error:
            if isinstance(error, InvalidArgument) or options.require_diarization:
                raise
            logger.warning("known voices unavailable, speakers stay anonymous: %s", error)
            return []

    async def _models(self, options: JobOptions, state: RunState) -> tuple[str, str, str]:
        segmentation = embedding = ""
        if not options.skip_diarization:
            try:
                segmentation, embedding = await self._diarizer.models()
            except Exception:
                logger.warning("diarizer GetInfo failed; models left blank", exc_info=True)
        return state.transcription_model, segmentation, embedding


async def _tolerant(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The diarizer's events; its failure becomes a warning, and the job goes on."""
    try:
        async for event in stream:
            yield event
    except WhospokeError as error:
        if isinstance(error, InvalidArgument):
            raise
        logger.warning("diarization failed, transcript continues without speakers: %s", error)
        yield JobWarning(
            "diarization_failed",
            f"diarization failed ({error.code.name}: {error}); speakers are unknown",
        )


async def _while_decoding(
    decoding: asyncio.Future[SpooledAudio], options: JobOptions, state: RunState
) -> AsyncIterator[ProgressUpdate]:
    """A progress update every `DECODE_PROGRESS_SECONDS` until `decoding` ends.

    The decode runs in a worker thread and only stores its position
    (`DecodeProgress`); waiting on the task with a timeout wakes the loop just
    often enough to report it, and at once when decoding ends.
    """
    while not decoding.done():
        await asyncio.wait({decoding}, timeout=DECODE_PROGRESS_SECONDS)
        if not decoding.done():
            yield progress(options, state, time.perf_counter())


async def _discard(decoding: asyncio.Future[SpooledAudio]) -> None:
    """Stop a decode still running (its thread has ended on return) and remove its file."""
    if not decoding.done():
        decoding.cancel()
    await asyncio.wait({decoding})
    if decoding.cancelled() or decoding.exception() is not None:
        return
    await decoding.result().remove()
