"""Interleaving several async event streams into one, as their events come."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class _End:
    """A stream ended, normally (`error` None) or with an exception."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


async def interleave(streams: Mapping[str, AsyncIterator[T]]) -> AsyncIterator[tuple[str, T]]:
    """(name, event) pairs from all streams in arrival order, until every stream ends.

    The first failure cancels the other streams and propagates; so does leaving
    the loop early (each stream's `finally` runs, which cancels its RPC). Each
    stream runs at most one event ahead of the consumer.
    """
    queue: asyncio.Queue[tuple[str, Any, asyncio.Event]] = asyncio.Queue()

    async def pump(name: str, stream: AsyncIterator[T]) -> None:
        try:
            async for event in stream:
                taken = asyncio.Event()
                await queue.put((name, event, taken))
                await taken.wait()
        except Exception as error:
            queue.put_nowait((name, _End(error), asyncio.Event()))
        else:
            queue.put_nowait((name, _End(), asyncio.Event()))
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()

    tasks = [asyncio.create_task(pump(n, s), name=f"stream-{n}") for n, s in streams.items()]
    try:
        remaining = len(tasks)
        while remaining:
            name, event, taken = await queue.get()
            if isinstance(event, _End):
                if event.error is not None:
                    raise event.error
                remaining -= 1
                continue
            taken.set()
            yield name, event
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def held(
    stream: AsyncIterator[T], until: asyncio.Event, at_most: float
) -> AsyncGenerator[T, None]:
    """`stream`'s events, not asked for before `until` is set or `at_most` seconds passed.

    A backend call that starts on its first event (as `retried_once` does) thereby waits:
    where two models share cores, the one held leaves them to the other until then.
    Closing the stream while it is held cancels the wait and never starts the call.
    """
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(until.wait(), at_most)
    try:
        async for event in stream:
            yield event
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
