"""`--max-connection-age-seconds` and its grace: parsed like every server flag, and passed to
gRPC as the channel arguments that make clients reconnect (and re-resolve DNS)."""

from __future__ import annotations

import pytest

from whospoke.common.config import (
    MAX_CONNECTION_AGE_SECONDS,
    EnvParser,
    ServerConfig,
    add_server_flags,
    server_config,
)
from whospoke.common.server import server_options

PREFIX = "WHOSPOKE_TESTSERVICE"
AGE = "grpc.max_connection_age_ms"
GRACE = "grpc.max_connection_age_grace_ms"


def parse(*argv: str) -> ServerConfig:
    parser = EnvParser("whospoke-testservice", PREFIX, "test")
    add_server_flags(parser, 50099, 9499)
    return server_config(parser.parse_args(list(argv)))


def test_off_by_default_so_grpc_keeps_its_defaults() -> None:
    config = parse()
    assert config.max_connection_age_seconds == 0
    assert config.max_connection_age_grace_seconds == 0
    options = dict(server_options(config))
    assert AGE not in options and GRACE not in options
    assert options["grpc.max_receive_message_length"] == config.max_message_bytes


def test_flag_beats_env_and_both_reach_grpc_in_milliseconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(f"{PREFIX}_MAX_CONNECTION_AGE_SECONDS", "300")
    monkeypatch.setenv(f"{PREFIX}_MAX_CONNECTION_AGE_GRACE_SECONDS", "30.5")
    from_env = parse()
    assert from_env.max_connection_age_seconds == 300.0
    assert from_env.max_connection_age_grace_seconds == 30.5
    options = dict(server_options(from_env))
    assert options[AGE] == 300_000 and options[GRACE] == 30_500
    from_flag = parse("--max-connection-age-seconds", "0.5")
    assert from_flag.max_connection_age_seconds == 0.5
    assert dict(server_options(from_flag))[AGE] == 500


def test_age_without_grace_leaves_calls_in_flight_uncut() -> None:
    options = dict(server_options(parse("--max-connection-age-seconds", "60")))
    assert options[AGE] == 60_000 and GRACE not in options


@pytest.mark.parametrize("value", ["-1", "nan-ish", str(MAX_CONNECTION_AGE_SECONDS + 1)])
def test_bad_values_exit_2_from_the_flag_and_from_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as flag:
        parse("--max-connection-age-seconds", value)
    assert flag.value.code == 2
    monkeypatch.setenv(f"{PREFIX}_MAX_CONNECTION_AGE_GRACE_SECONDS", value)
    with pytest.raises(SystemExit) as env:
        parse()
    assert env.value.code == 2
    assert f"{PREFIX}_MAX_CONNECTION_AGE_GRACE_SECONDS" in capsys.readouterr().err


def test_the_largest_age_fits_grpcs_int32_milliseconds() -> None:
    config = parse("--max-connection-age-seconds", str(MAX_CONNECTION_AGE_SECONDS))
    assert dict(server_options(config))[AGE] <= 2**31 - 1
