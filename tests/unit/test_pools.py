"""Transcriber pools: naming, routing by `ProcessOptions.model`, replica addresses."""

from __future__ import annotations

import pytest

from orchestrator.config import PoolTarget, load_config, pool_target
from orchestrator.domain import BackendHealth, BackendInfo
from orchestrator.pools import Pool, TranscriberPools
from orchestrator.replicas import parse_target, resolve
from tests.fakes import FakeTranscriber
from whospoke.common.errors import InvalidArgument, Unavailable


class Silent(FakeTranscriber):
    """A transcriber whose `GetInfo` does not answer (still starting, or down)."""

    async def served_model(self) -> str:
        raise Unavailable("transcriber at fake:1 is unavailable")

    async def health(self) -> BackendHealth:
        return BackendHealth("transcriber", "fake:1", False, "UNAVAILABLE")


async def test_an_empty_model_takes_the_first_pool_and_a_named_one_its_own() -> None:
    base, large = FakeTranscriber(model="base"), FakeTranscriber(model="large-v3")
    pools = TranscriberPools([Pool("base", base), Pool("large-v3", large)])
    assert await pools.pick("") is base
    assert await pools.pick("large-v3") is large
    assert await pools.pick("base") is base


async def test_an_unnamed_pool_is_named_by_the_model_it_reports() -> None:
    tiny = FakeTranscriber(model="tiny.en")
    pools = TranscriberPools([Pool("base", FakeTranscriber(model="base")), Pool("", tiny)])
    assert pools.names == ["base", ""]
    assert await pools.pick("tiny.en") is tiny
    assert pools.names == ["base", "tiny.en"]


async def test_an_unknown_model_names_the_field_and_the_served_models() -> None:
    pools = TranscriberPools([Pool("", FakeTranscriber(model="base")), Pool("", Silent())])
    with pytest.raises(InvalidArgument) as caught:
        await pools.check("large-v3")
    message = str(caught.value)
    assert message.startswith("options.model: 'large-v3' is not served here")
    assert "served: 'base'" in message
    assert pools.names == ["base", ""]  # the silent pool is asked again next time


async def test_health_lists_every_pool_by_name() -> None:
    pools = TranscriberPools(
        [Pool("", FakeTranscriber(model="base")), Pool("large-v3", FakeTranscriber())]
    )
    checks = await pools.health()
    assert [(c.pool, c.info.models) for c in checks] == [
        ("base", ("base",)),
        ("large-v3", ("fake-whisper",)),
    ]
    assert checks[0].info == BackendInfo(("base",))


def test_pool_flags_take_a_model_name_or_an_address_alone() -> None:
    assert pool_target("base=dns:///transcriber-base:50061") == PoolTarget(
        "base", "dns:///transcriber-base:50061"
    )
    assert pool_target("ipv4:10.0.0.1:50061,10.0.0.2:50061") == PoolTarget(
        "", "ipv4:10.0.0.1:50061,10.0.0.2:50061"
    )
    assert pool_target("Systran/faster-whisper-large-v3=h:1").model == (
        "Systran/faster-whisper-large-v3"
    )
    for bad in ("=h:1", "base=", "bad name=h:1"):
        with pytest.raises(ValueError):
            pool_target(bad)


def test_transcriber_pools_come_from_repeated_flags_or_one_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = load_config(["--transcriber", "base=a:1", "--transcriber", "large-v3=b:2"])
    assert config.backends.transcribers == (
        PoolTarget("base", "a:1"),
        PoolTarget("large-v3", "b:2"),
    )
    assert load_config([]).backends.transcribers == (PoolTarget("", "127.0.0.1:50061"),)
    monkeypatch.setenv("WHOSPOKE_ORCHESTRATOR_TRANSCRIBER", "base=a:1 tiny.en=c:3")
    config = load_config([])
    assert [p.model for p in config.backends.transcribers] == ["base", "tiny.en"]
    config = load_config(["--transcriber", "x:9"])  # the flag replaces the variable
    assert config.backends.transcribers == (PoolTarget("", "x:9"),)
    with pytest.raises(SystemExit):
        load_config(["--transcriber", "base=a:1", "--transcriber", "base=b:2"])


def test_targets_name_their_replicas() -> None:
    assert parse_target("ipv4:10.0.0.1:50061,10.0.0.2:50061") == (
        [("10.0.0.1", "50061"), ("10.0.0.2", "50061")],
        False,
    )
    assert parse_target("ipv6:[::1]:50061") == ([("::1", "50061")], False)
    assert parse_target("dns:///transcriber:50061") == ([("transcriber", "50061")], True)
    assert parse_target("dns://8.8.8.8/transcriber:50061") == ([("transcriber", "50061")], True)
    assert parse_target("localhost:50061") == ([("localhost", "50061")], True)
    assert parse_target("transcriber") == ([("transcriber", "443")], True)
    assert parse_target("unix:/run/whospoke.sock") == ([], False)


async def test_resolving_gives_each_replica_once() -> None:
    assert await resolve("ipv4:127.0.0.1:1,127.0.0.1:1,127.0.0.2:1") == [
        "127.0.0.1:1",
        "127.0.0.2:1",
    ]
    assert await resolve("ipv6:[::1]:7") == ["[::1]:7"]
    assert "127.0.0.1:50061" in await resolve("dns:///localhost:50061")
    with pytest.raises(OSError):
        await resolve("dns:///no-such-host.invalid:1")
