"""Diarization: options, speaker turns and results, and their protobuf forms."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from whospoke.common.errors import InvalidArgument
from whospoke.v1 import diarizer_pb2 as pb

SPEAKER_COUNTS = ("num_speakers", "min_speakers", "max_speakers")
LIVE_LATENCY_SECONDS = 2.0
"""Provisional turns' default delay: the bench's trade-off of accuracy and delay."""
LIVE_LATENCY_RANGE = (0.5, 10.0)


@dataclass(frozen=True)
class DiarizationOptions:
    """Options of one stream, validated."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    return_embeddings: bool = False
    """Each speaker's centroid embedding in the result (known speakers need them)."""
    live_turns: bool = False
    """Provisional turns while the audio arrives (live streams)."""
    live_latency_seconds: float = LIVE_LATENCY_SECONDS


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class ProvisionalTurns:
    """Provisional turns of a live stream, from where the previous ones ended to `until`
    (seconds): who speaks, overlaps included, and one speaker at a time."""

    turns: tuple[Turn, ...] = ()
    exclusive_turns: tuple[Turn, ...] = ()
    until: float = 0.0


@dataclass(frozen=True)
class SpeakerInfo:
    speaker: str
    speech_seconds: float
    embedding: tuple[float, ...] = ()
    known_similarity: float = 0.0
    """Similarity to the enrolled voice this speaker was recognised as (0: anonymous)."""


@dataclass(frozen=True)
class DiarizationOutput:
    turns: tuple[Turn, ...]
    exclusive_turns: tuple[Turn, ...]
    speakers: tuple[SpeakerInfo, ...]


def options_from_pb(config: pb.DiarizationConfig, field: str = "config") -> DiarizationOptions:
    """Validate the speaker counts and convert them to domain options."""
    counts = {}
    for name in ("num_speakers", "min_speakers", "max_speakers"):
        if config.HasField(name):
            value = getattr(config, name)
            if value < 1:
                raise InvalidArgument(f"{field}.{name}: must be at least 1, got {value}")
            counts[name] = value
    if "num_speakers" in counts and len(counts) > 1:
        raise InvalidArgument(
            f"{field}.num_speakers: give either num_speakers or min_speakers/max_speakers, not both"
        )
    low, high = counts.get("min_speakers"), counts.get("max_speakers")
    if low is not None and high is not None and low > high:
        raise InvalidArgument(
            f"{field}.min_speakers: {low} is greater than {field}.max_speakers {high}"
        )
    if config.turn_output not in pb.TurnOutput.values():
        raise InvalidArgument(f"{field}.turn_output: unknown value {config.turn_output}")
    return DiarizationOptions(
        counts.get("num_speakers"),
        low,
        high,
        config.return_embeddings,
        config.live_turns,
        live_latency(config.live_latency_seconds, f"{field}.live_latency_seconds"),
    )


def live_latency(value: float, field: str) -> float:
    """The latency asked for (0: the default), checked against its range."""
    if value == 0:
        return LIVE_LATENCY_SECONDS
    low, high = LIVE_LATENCY_RANGE
    if not low <= value <= high:
        raise InvalidArgument(f"{field}: must be from {low:g} to {high:g} s (or 0), got {value:g}")
    return value


def options_to_pb(options: DiarizationOptions) -> pb.DiarizationConfig:
    """The config asking for both kinds of turns, as the orchestrator needs."""
    config = pb.DiarizationConfig(
        turn_output=pb.TURN_OUTPUT_BOTH,
        return_embeddings=options.return_embeddings,
        live_turns=options.live_turns,
        live_latency_seconds=options.live_latency_seconds if options.live_turns else 0.0,
    )
    for name in SPEAKER_COUNTS:
        value = getattr(options, name)
        if value is not None:
            setattr(config, name, value)
    return config


def result_to_pb(
    output: DiarizationOutput, config: pb.DiarizationConfig, duration: float, elapsed: float
) -> pb.DiarizationResult:
    """The result message, with the turns and embeddings `config` asked for."""
    kind = config.turn_output
    overlapping = kind in (
        pb.TURN_OUTPUT_UNSPECIFIED,
        pb.TURN_OUTPUT_BOTH,
        pb.TURN_OUTPUT_OVERLAPPING,
    )
    exclusive = kind in (pb.TURN_OUTPUT_UNSPECIFIED, pb.TURN_OUTPUT_BOTH, pb.TURN_OUTPUT_EXCLUSIVE)
    return pb.DiarizationResult(
        turns=[turn_to_pb(t) for t in output.turns] if overlapping else [],
        exclusive_turns=[turn_to_pb(t) for t in output.exclusive_turns] if exclusive else [],
        speakers=[
            pb.SpeakerSummary(
                speaker=s.speaker,
                speech_seconds=s.speech_seconds,
                embedding=list(s.embedding) if config.return_embeddings else [],
            )
            for s in output.speakers
        ],
        audio_duration_seconds=duration,
        processing_seconds=elapsed,
    )


def output_from_pb(result: pb.DiarizationResult) -> DiarizationOutput:
    speakers = tuple(
        SpeakerInfo(s.speaker, s.speech_seconds, tuple(s.embedding)) for s in result.speakers
    )
    exclusive = turns_from_pb(result.exclusive_turns)
    return DiarizationOutput(turns_from_pb(result.turns), exclusive, speakers)


def turn_to_pb(turn: Turn) -> pb.SpeakerTurn:
    return pb.SpeakerTurn(start_seconds=turn.start, end_seconds=turn.end, speaker=turn.speaker)


def live_turns_to_pb(live: ProvisionalTurns) -> pb.LiveTurns:
    return pb.LiveTurns(
        turns=[turn_to_pb(t) for t in live.turns],
        exclusive_turns=[turn_to_pb(t) for t in live.exclusive_turns],
        until_seconds=live.until,
    )


def live_turns_from_pb(live: pb.LiveTurns) -> ProvisionalTurns:
    """A diarizer older than `exclusive_turns` sent one speaker at a time in `turns`."""
    turns = turns_from_pb(live.turns)
    exclusive = turns_from_pb(live.exclusive_turns) if live.exclusive_turns else turns
    return ProvisionalTurns(turns, exclusive, live.until_seconds)


def turns_from_pb(turns: Iterable[pb.SpeakerTurn]) -> tuple[Turn, ...]:
    return tuple(Turn(t.start_seconds, t.end_seconds, t.speaker) for t in turns)
