"""The decoder temperature: checked (0 to 1) wherever it enters, and carried to the decoder."""

from __future__ import annotations

import math

import pytest

from orchestrator.options import options_from_pb as job_options
from whospoke.cli import main as cli
from whospoke.cli.checks import check_options
from whospoke.cli.client import options_from_args
from whospoke.cli.errors import UsageError
from whospoke.common.errors import InvalidArgument
from whospoke.contract.transcription import TranscriptionOptions, options_from_pb, options_to_pb
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import transcriber_pb2 as tpb


def test_unset_is_zero_and_a_value_comes_back_as_written() -> None:
    assert options_from_pb(tpb.TranscriptionConfig(), 5).temperature == 0.0
    assert options_from_pb(tpb.TranscriptionConfig(temperature=0.7), 5).temperature == 0.7
    assert options_from_pb(tpb.TranscriptionConfig(temperature=1), 5).temperature == 1.0


@pytest.mark.parametrize("value", [-0.1, 1.5, math.inf, math.nan])
def test_outside_0_to_1_is_invalid_naming_the_field(value: float) -> None:
    with pytest.raises(InvalidArgument, match=r"^config\.temperature: .* outside the range 0 to 1"):
        options_from_pb(tpb.TranscriptionConfig(temperature=value), 5)
    with pytest.raises(InvalidArgument, match=r"^options\.temperature: "):
        job_options(pb.ProcessOptions(temperature=value))


def test_the_orchestrator_passes_it_on_to_the_transcriber() -> None:
    options = job_options(pb.ProcessOptions(temperature=0.25))
    assert options.transcription.temperature == 0.25
    config = options_to_pb(options.transcription)
    assert config.HasField("temperature") and config.temperature == 0.25
    assert options_from_pb(config, 5).temperature == 0.25
    assert job_options(pb.ProcessOptions()).transcription == TranscriptionOptions(beam_size=0)


def parse(*flags: str) -> pb.ProcessOptions:
    args = cli.parser().parse_args(["process", "in.wav", *flags])
    check_options(args)
    return options_from_args(args)


def test_the_cli_flag_sets_the_option_only_when_given() -> None:
    assert parse("--temperature", "0.4").temperature == pytest.approx(0.4)
    assert not parse().HasField("temperature")
    assert parse("--temperature", "0").HasField("temperature")
    submit = cli.parser().parse_args(["submit", "in.wav", "--temperature", "1"])
    assert options_from_args(submit).temperature == 1.0


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--temperature", "1.2"], "--temperature must be between 0 and 1, got 1.2"),
        (["--temperature", "-1"], "--temperature must be between 0 and 1, got -1"),
        (["--temperature", "0.5", "--no-transcription"], "--temperature has no effect with"),
    ],
)
def test_the_cli_refuses_what_cannot_work(flags: list[str], says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse(*flags)
