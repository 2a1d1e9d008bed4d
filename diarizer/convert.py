"""Protobuf to domain conversions of the diarizer contract that clients share.

Kept apart from the servicer so that the orchestrator can validate diarization
options without importing the models.
"""

from __future__ import annotations

from diarizer.domain import DiarizationOptions
from whospoke.common.errors import InvalidArgument
from whospoke.v1 import diarizer_pb2 as pb


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
    return DiarizationOptions(counts.get("num_speakers"), low, high)
