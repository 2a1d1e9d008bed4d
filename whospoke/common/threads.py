"""Running blocking generators (model inference) off the event loop.

Inference must never block the asyncio loop, yet callers want each result as soon
as it exists. `iterate_in_thread` runs a generator in a worker thread and hands
its items to the loop one by one; cancelling the consumer sets a stop event the
generator checks between items, so work stops at the next item boundary.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


async def iterate_in_thread(
    make: Callable[[threading.Event], Iterator[T]],
) -> AsyncGenerator[T, None]:
    """Yield the items of `make(stop)`, which runs entirely in a worker thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()
    finished: asyncio.Future[None] = loop.create_future()

    def put(item: object) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def run() -> None:
        try:
            for item in make(stop):
                put(item)
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, re-raised there
            put(_Failure(exc))
        finally:
            put(_DONE)
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, finished)

    worker = threading.Thread(target=run, name="whospoke-inference", daemon=True)
    worker.start()
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        # The model is busy until the thread ends: wait, so that a caller's
        # concurrency slot is released only once the device is free again.
        await asyncio.shield(finished)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def run_stoppable(work: Callable[[threading.Event], T]) -> T:
    """Run `work(stop)` in a worker thread and return its result.

    `asyncio.to_thread` alone lets a cancelled caller go while its thread keeps
    running, so a job could free its concurrency slot while its decode still
    burns CPU and memory. Here a cancelled caller sets `stop` (which `work` checks
    between steps) and waits for the thread to return before the cancellation
    goes on: what a slot pays for has really ended when the slot is freed.
    """
    stop = threading.Event()
    task = asyncio.ensure_future(asyncio.to_thread(work, stop))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        stop.set()
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: a failure after the cancel is not news
        raise
