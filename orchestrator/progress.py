"""What a running job has produced so far, and the progress and warnings that follow from it.

The job runner (`orchestrator.jobs`) moves the work along; this module keeps its
state and says what that state means to a client: percentages and elapsed times
per stage, the warnings owed at the end, and the speaker-attributed segments
that can be sent before the merge stage.

Attributing a transcript segment needs only that segment and the diarizer's
turns (`orchestrator.merge.attribute`), so once the turns are known every
segment can be attributed as it arrives: the segments sent live are exactly,
in order, those of the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.attributed import AttributedSegment
from orchestrator.domain import JobOptions
from orchestrator.known import recognise, relabel
from orchestrator.merge import attribute
from orchestrator.spool import DecodeProgress
from orchestrator.store.speakers import Voice
from whospoke.contract.diarization import DiarizationOutput
from whospoke.contract.transcription import Segment
from whospoke.v1 import audio_pb2

DECODE_SHARE = 0.05
"""Part of the overall percentage given to decoding; the rest follows the slower stage."""


@dataclass(frozen=True)
class ProgressUpdate:
    transcription_percent: float
    diarization_percent: float
    overall_percent: float
    transcription_elapsed: float
    diarization_elapsed: float
    segment_count: int
    decoding_percent: float = 0.0
    decoding_elapsed: float = 0.0
    transcription_done: bool = False
    diarization_done: bool = False


@dataclass(frozen=True)
class JobWarning:
    code: str
    message: str
    start: float = 0.0
    """The stretch of audio it concerns, in seconds; 0 to 0 for the whole job."""
    end: float = 0.0


@dataclass(frozen=True)
class VoicesFound:
    """The known voices a job looks for, found while its backends run."""

    voices: list[Voice]


@dataclass
class RunState:
    """What the job's stages have produced so far, and when each started and ended.

    The stage timers stop at the `*_done` instants, so the elapsed times sent
    with progress and in the result stop advancing when a stage ends.
    """

    decode_started: float
    decode: DecodeProgress = field(default_factory=DecodeProgress)
    decode_done: float | None = None
    started: float | None = None
    """When transcription and diarization started (decoding had ended)."""
    audio_seconds: float = 0.0
    segments: list[Segment] = field(default_factory=list)
    speech_warnings: int = 0
    warnings: list[JobWarning] = field(default_factory=list)
    transcribed: float = 0.0
    diarized: float = 0.0
    language: str = ""
    transcription_model: str = ""
    diarization: DiarizationOutput = field(default_factory=lambda: DiarizationOutput((), (), ()))
    transcription_done: float | None = None
    diarization_done: float | None = None
    diarization_failed: bool = False
    speakers_known: bool = False
    """The diarizer's turns have arrived: segments can be attributed as they come."""
    attributed: list[AttributedSegment] = field(default_factory=list)
    """Every attributed segment sent so far, in order."""
    devices: list[audio_pb2.DeviceStats] = field(default_factory=list)
    voices: list[Voice] = field(default_factory=list)
    """Enrolled voices the job looks for among its speakers."""
    voices_known: bool = True
    """False while the job's known voices are still being looked up."""
    waiting: DiarizationOutput | None = None
    """The diarizer's output, held until the known voices are found."""
    return_embeddings: bool = False

    def diarized_output(self, output: DiarizationOutput, options: JobOptions) -> None:
        """The diarizer's output: the speakers are known now, or once the voices are."""
        self.return_embeddings = options.return_embeddings
        if not options.recognises:
            self.diarization, self.speakers_known = output, True
        elif self.voices_known:
            self._name(output)
        else:
            self.waiting = output

    def found(self, voices: list[Voice]) -> bool:
        """The job's known voices; True when turns were waiting for them (now named)."""
        self.voices, self.voices_known = voices, True
        if self.waiting is None:
            return False
        self._name(self.waiting)
        self.waiting = None
        return True

    def _name(self, output: DiarizationOutput) -> None:
        """Recognised speakers under their names; embeddings only when asked for."""
        matches = recognise(output.speakers, self.voices)
        self.diarization = relabel(output, matches, self.return_embeddings)
        self.speakers_known = True

    def attribute(self, segments: Sequence[Segment]) -> list[AttributedSegment]:
        """`segments` with their speakers, kept for the result; none before the turns are known.

        Each transcript segment must be passed once, in order: first all those
        received when the turns arrive, then each new one.
        """
        if not self.speakers_known:
            return []
        attributed = attribute(segments, self.diarization.exclusive_turns)
        self.attributed.extend(attributed)
        return attributed

    def result_segments(self) -> list[AttributedSegment]:
        """The result's segments: those already sent, or (without turns) attributed now."""
        if self.speakers_known:
            return list(self.attributed)
        return attribute(self.segments, self.diarization.exclusive_turns)


def percent(done: float, total: float) -> float:
    return 100.0 if total <= 0 else min(100.0, 100.0 * done / total)


def stage(
    skipped: bool, done_at: float | None, seconds: float, state: RunState, now: float
) -> tuple[float, float, bool]:
    """(percent, elapsed seconds, done) of transcription or diarization.

    A skipped stage is done at 100 % in no time; one that has not started (still
    decoding) is at 0; a finished one keeps its final elapsed time.
    """
    if skipped:
        return 100.0, 0.0, True
    if state.started is None:
        return 0.0, 0.0, False
    elapsed = (done_at or now) - state.started
    return percent(seconds, state.audio_seconds), elapsed, done_at is not None


def progress(options: JobOptions, state: RunState, now: float) -> ProgressUpdate:
    transcription, t_elapsed, t_done = stage(
        options.skip_transcription, state.transcription_done, state.transcribed, state, now
    )
    diarization, d_elapsed, d_done = stage(
        options.skip_diarization, state.diarization_done, state.diarized, state, now
    )
    # A stage that has ended (a failed diarization included) holds nothing back.
    slowest = min(100.0 if t_done else transcription, 100.0 if d_done else diarization)
    decoding = state.decode.percent
    return ProgressUpdate(
        transcription_percent=transcription,
        diarization_percent=diarization,
        overall_percent=DECODE_SHARE * decoding + (1 - DECODE_SHARE) * slowest,
        transcription_elapsed=t_elapsed,
        diarization_elapsed=d_elapsed,
        segment_count=len(state.segments),
        decoding_percent=decoding,
        decoding_elapsed=(state.decode_done or now) - state.decode_started,
        transcription_done=t_done,
        diarization_done=d_done,
    )


def closing_warnings(options: JobOptions, state: RunState) -> list[JobWarning]:
    """Warnings about what the job found nothing of, sent before its result."""
    warnings = []
    if not options.skip_transcription and not state.segments and not state.speech_warnings:
        # With speech warnings the transcriber did hear speech: those warnings say where.
        warnings.append(JobWarning("no_speech", "the transcriber found no speech in the audio"))
    if state.diarization_failed:
        return warnings
    if not options.skip_diarization and not state.diarization.exclusive_turns:
        warnings.append(JobWarning("no_speakers", "the diarizer found no speaker turns"))
    return warnings
