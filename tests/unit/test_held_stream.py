"""`orchestrator.streams.held`: a stream not asked for until its event or its limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from orchestrator.streams import held


class Recorded:
    """An async stream that records whether it was started and closed."""

    def __init__(self) -> None:
        self.started = False
        self.closed = False

    async def events(self) -> AsyncIterator[int]:
        self.started = True
        try:
            yield 1
            yield 2
        finally:
            self.closed = True


async def _turns(n: int) -> None:
    """Lets the event loop run `n` rounds (no timer is involved)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_the_stream_starts_only_once_released() -> None:
    inner, release = Recorded(), asyncio.Event()
    stream = held(inner.events(), release, at_most=3600)
    first = asyncio.ensure_future(anext(stream))
    await _turns(20)
    assert not inner.started and not first.done()
    release.set()
    assert await first == 1
    assert [e async for e in stream] == [2]
    assert inner.closed


async def test_the_limit_releases_it() -> None:
    inner = Recorded()
    stream = held(inner.events(), asyncio.Event(), at_most=0.01)
    assert [e async for e in stream] == [1, 2]


async def test_closed_while_held_it_never_starts() -> None:
    inner = Recorded()
    stream = held(inner.events(), asyncio.Event(), at_most=3600)
    first = asyncio.ensure_future(anext(stream))
    await _turns(5)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await stream.aclose()
    assert not inner.started
