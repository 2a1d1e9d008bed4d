"""Admission control: running limit, FIFO queue with positions, immediate rejection."""

from __future__ import annotations

import asyncio

import pytest

from whospoke.common.errors import ResourceExhausted
from whospoke.common.limiter import Limiter


async def test_runs_then_queues_then_rejects() -> None:
    changes: list[tuple[int, int]] = []
    limiter = Limiter(1, 2, on_change=lambda r, q: changes.append((r, q)))
    first = limiter.ticket()
    assert first.granted
    second, third = limiter.ticket(), limiter.ticket()
    assert (limiter.running, limiter.queued) == (1, 2)
    with pytest.raises(ResourceExhausted, match="1 job\\(s\\) running and 2 queued"):
        limiter.ticket()
    first.release()
    assert second.granted and not third.granted
    assert changes[-1] == (1, 1)


async def test_positions_are_reported_as_the_queue_moves() -> None:
    limiter = Limiter(1, 3)
    running = limiter.ticket()
    second = limiter.ticket()
    third = limiter.ticket()
    seen: list[int] = []

    async def watch() -> None:
        async for position in third.positions():
            seen.append(position)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    assert seen == [2]
    running.release()
    await asyncio.sleep(0)
    assert seen == [2, 1]
    assert second.granted and not watcher.done()
    second.release()
    await asyncio.wait_for(watcher, 1)
    assert third.granted
    assert (limiter.running, limiter.queued) == (1, 0)


async def test_cancelled_waiter_leaves_the_queue() -> None:
    limiter = Limiter(1, 1)
    holder = limiter.ticket()
    waiter = limiter.ticket()
    task = asyncio.create_task(waiter.wait())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.queued == 0
    holder.release()
    assert limiter.running == 0


async def test_context_manager_releases_on_error() -> None:
    limiter = Limiter(1, 0)
    with pytest.raises(RuntimeError):
        async with limiter.ticket():
            assert limiter.running == 1
            raise RuntimeError("boom")
    assert limiter.running == 0
