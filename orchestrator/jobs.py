"""One `Process` job: wait for a slot, decode once, fan out to both backends, merge.

Transcription and diarization run concurrently on the same decoded audio; their
events are interleaved into one stream as they come. Leaving the stream early
(client cancel, deadline, error) cancels both backend calls. The audio is decoded
into a spool file (`orchestrator.spool`) inside the job's slot: decoding stops at
the duration limit and when the job is cancelled, and the slot is freed only once
it has stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.domain import (
    DiarizationDone,
    DiarizerBackend,
    JobOptions,
    Progressed,
    TranscriberBackend,
    TranscriptDone,
)
from orchestrator.merge import AttributedSegment, attribute, full_text
from orchestrator.spool import SpooledAudio, spool
from orchestrator.streams import interleave
from whospoke.common.decode import Source as FileSource
from whospoke.common.errors import InvalidArgument, NotFound, WhospokeError
from whospoke.common.limiter import Limiter
from whospoke.contract.diarization import DiarizationOutput
from whospoke.contract.transcription import Segment

logger = logging.getLogger(__name__)

DECODE_SHARE = 0.05
"""Part of the overall percentage given to decoding; the rest follows the slower stage."""


@dataclass(frozen=True)
class Queued:
    position: int


@dataclass(frozen=True)
class StageStarted:
    stage: str
    audio_seconds: float = 0.0


@dataclass(frozen=True)
class ProgressUpdate:
    transcription_percent: float
    diarization_percent: float
    overall_percent: float
    transcription_elapsed: float
    diarization_elapsed: float
    segment_count: int


@dataclass(frozen=True)
class JobWarning:
    code: str
    message: str


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


JobEvent = Queued | StageStarted | ProgressUpdate | Segment | JobWarning | JobResult
Source = Callable[[], FileSource]
"""Gives the file when the job starts (an upload may have been deleted while queued)."""


@dataclass
class _State:
    """What the concurrent stages have produced so far."""

    started: float
    audio_seconds: float
    segments: list[Segment] = field(default_factory=list)
    transcribed: float = 0.0
    diarized: float = 0.0
    language: str = ""
    transcription_model: str = ""
    diarization: DiarizationOutput = field(default_factory=lambda: DiarizationOutput((), (), ()))
    transcription_done: float | None = None
    diarization_done: float | None = None
    diarization_failed: bool = False


class JobRunner:
    def __init__(
        self,
        transcriber: TranscriberBackend,
        diarizer: DiarizerBackend,
        limiter: Limiter,
        spool_dir: Path,
        max_audio_seconds: float = float("inf"),
    ) -> None:
        self._transcriber = transcriber
        self._diarizer = diarizer
        self._limiter = limiter
        self._spool_dir = spool_dir
        self._max_audio_seconds = max_audio_seconds

    async def run(self, source: Source, options: JobOptions) -> AsyncIterator[JobEvent]:
        """The job's events, ending with `JobResult`; errors propagate as our exceptions."""
        started = time.perf_counter()
        ticket = self._limiter.ticket()
        try:
            async for position in ticket.positions():
                yield Queued(position)
            queued = time.perf_counter() - started
            yield StageStarted("decoding")
            audio = await self._decode(source)
            try:
                decoded = time.perf_counter()
                state = _State(decoded, audio.duration_seconds)
                async for event in self._fan_out(audio, options, state):
                    yield event
                yield StageStarted("merging", state.audio_seconds)
                async for event in self._finish(options, state, started, queued):
                    yield event
            finally:
                await audio.remove()
        finally:
            ticket.release()

    async def _decode(self, source: Source) -> SpooledAudio:
        try:
            audio = await spool(source, self._spool_dir, self._max_audio_seconds)
        except FileNotFoundError:
            raise NotFound(
                "upload_id: the upload was deleted or expired before its job started"
            ) from None
        if audio.samples == 0:
            await audio.remove()
            raise InvalidArgument("audio: the file holds no audio samples")
        return audio

    async def _finish(
        self, options: JobOptions, state: _State, started: float, queued: float
    ) -> AsyncIterator[JobEvent]:
        merge_start = time.perf_counter()
        segments = attribute(state.segments, state.diarization.exclusive_turns)
        for warning in _warnings(options, state):
            yield warning
        models = await self._models(options, state)
        end = time.perf_counter()
        timings = Timings(
            queued=queued,
            decoding=state.started - started - queued,
            transcription=(state.transcription_done or state.started) - state.started,
            diarization=(state.diarization_done or state.started) - state.started,
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
        )

    async def _fan_out(
        self, audio: SpooledAudio, options: JobOptions, state: _State
    ) -> AsyncIterator[JobEvent]:
        streams: dict[str, AsyncIterator[Any]] = {}
        if not options.skip_transcription:
            yield StageStarted("transcribing", state.audio_seconds)
            streams["transcriber"] = self._transcriber.transcribe(audio, options.transcription)
        if not options.skip_diarization:
            yield StageStarted("diarizing", state.audio_seconds)
            diarization = self._diarizer.diarize(audio, options.diarization)
            if not options.require_diarization and not options.skip_transcription:
                diarization = _tolerant(diarization)
            streams["diarizer"] = diarization
        async for name, event in interleave(streams):
            now = time.perf_counter()
            if isinstance(event, JobWarning):
                state.diarization_done, state.diarization_failed = now, True
                yield event
                continue
            if isinstance(event, Segment):
                state.segments.append(event)
                state.transcribed = max(state.transcribed, event.end)
                yield event
                continue
            if isinstance(event, TranscriptDone):
                state.language, state.transcription_model = event.language, event.model
                state.transcription_done, state.transcribed = now, state.audio_seconds
            elif isinstance(event, DiarizationDone):
                state.diarization = event.output
                state.diarization_done, state.diarized = now, state.audio_seconds
            elif isinstance(event, Progressed) and name == "diarizer":
                state.diarized = max(state.diarized, event.seconds)
            elif isinstance(event, Progressed):
                state.transcribed = max(state.transcribed, event.seconds)
            yield _progress(options, state, now)

    async def _models(self, options: JobOptions, state: _State) -> tuple[str, str, str]:
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


def _percent(done: float, total: float) -> float:
    return 100.0 if total <= 0 else min(100.0, 100.0 * done / total)


def _progress(options: JobOptions, state: _State, now: float) -> ProgressUpdate:
    transcription = (
        100.0 if options.skip_transcription else _percent(state.transcribed, state.audio_seconds)
    )
    diarization = (
        100.0 if options.skip_diarization else _percent(state.diarized, state.audio_seconds)
    )
    overall = 100 * DECODE_SHARE + (1 - DECODE_SHARE) * min(transcription, diarization)
    return ProgressUpdate(
        transcription_percent=transcription,
        diarization_percent=diarization,
        overall_percent=overall,
        transcription_elapsed=(state.transcription_done or now) - state.started,
        diarization_elapsed=(state.diarization_done or now) - state.started,
        segment_count=len(state.segments),
    )


def _warnings(options: JobOptions, state: _State) -> list[JobWarning]:
    warnings = []
    if not options.skip_transcription and not state.segments:
        warnings.append(JobWarning("no_speech", "the transcriber found no speech in the audio"))
    if state.diarization_failed:
        return warnings
    if not options.skip_diarization and not state.diarization.exclusive_turns:
        warnings.append(JobWarning("no_speakers", "the diarizer found no speaker turns"))
    return warnings
