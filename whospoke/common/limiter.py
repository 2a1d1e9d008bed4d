"""Admission control: a fixed number of jobs run, a bounded number wait.

One model instance serves one stream at a time well (one job per GPU); more
concurrent streams only slow each other down. Calls beyond the running limit wait
in a FIFO queue and learn their position; calls beyond the queue bound fail at
once with RESOURCE_EXHAUSTED rather than piling up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import TracebackType

from whospoke.common.errors import ResourceExhausted

ChangeCallback = Callable[[int, int], None]
"""Called with (running, queued) whenever either changes."""


class Limiter:
    """Counts running jobs and queues the rest, in arrival order."""

    def __init__(
        self, max_running: int, max_queued: int, on_change: ChangeCallback | None = None
    ) -> None:
        if max_running < 1:
            raise ValueError("max_running must be at least 1")
        if max_queued < 0:
            raise ValueError("max_queued must not be negative")
        self.max_running = max_running
        self.max_queued = max_queued
        self._running = 0
        self._waiting: list[Ticket] = []
        self._on_change = on_change

    @property
    def running(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def ticket(self) -> Ticket:
        """Take a place: running at once, or queued; full queue → RESOURCE_EXHAUSTED."""
        ticket = Ticket(self)
        if self._running < self.max_running and not self._waiting:
            self._running += 1
            ticket.granted = True
        elif len(self._waiting) >= self.max_queued:
            raise ResourceExhausted(
                f"server busy: {self._running} job(s) running and {len(self._waiting)} "
                f"queued (limit {self.max_running} + {self.max_queued}); retry later"
            )
        else:
            self._waiting.append(ticket)
        self._changed()
        return ticket

    def _position(self, ticket: Ticket) -> int:
        return self._waiting.index(ticket) + 1

    def _leave(self, ticket: Ticket) -> None:
        if ticket.granted:
            self._running -= 1
            ticket.granted = False
        elif ticket in self._waiting:
            self._waiting.remove(ticket)
        while self._waiting and self._running < self.max_running:
            nxt = self._waiting.pop(0)
            nxt.granted = True
            nxt.notify()
            self._running += 1
        for waiting in self._waiting:
            waiting.notify()
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self._running, len(self._waiting))


class Ticket:
    """A place in a `Limiter`: use as `async with`, or iterate `positions()` first."""

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self._event = asyncio.Event()
        self.granted = False
        self._left = False

    def notify(self) -> None:
        self._event.set()

    async def positions(self) -> AsyncIterator[int]:
        """Yield the 1-based queue position each time it changes, until granted."""
        last = 0
        try:
            while not self.granted:
                position = self._limiter._position(self)
                if position != last:
                    last = position
                    yield position
                self._event.clear()
                if not self.granted:
                    await self._event.wait()
        except BaseException:
            self.release()
            raise

    async def wait(self) -> None:
        """Wait until the job may run."""
        async for _ in self.positions():
            pass

    def release(self) -> None:
        """Leave the limiter (running or queued); safe to call twice."""
        if not self._left:
            self._left = True
            self._limiter._leave(self)

    async def __aenter__(self) -> Ticket:
        await self.wait()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
