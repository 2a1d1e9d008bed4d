"""A running job's events on their way into the store, and who is waiting for them.

A job must not stall because the database is slow or briefly down, and no event
may be lost or reordered: the job puts its events on an in-memory queue and one
writer task per job stores them in order, retrying while the store is
unavailable. Its end (`finish`) is the last item, so it is written only after
every event before it. Watchers (`WatchJob`) read the store, and `JobSignals`
wakes those on this replica as soon as something was written; watchers of jobs
running on other replicas poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from orchestrator.store import JobState, JobStore, StoreUnavailable
from whospoke.v1 import orchestrator_pb2 as pb

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Waits between attempts to reach an unavailable store (the last one repeats)."""


class JobSignals:
    """Per-job wake-ups for watchers in this process.

    A watcher takes its wake-up (`listen`) *before* it reads the store and waits on it
    after: a write and its `notify` that land during the read have already set it, so
    none is lost between reading and waiting.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def listen(self, job_id: str) -> asyncio.Event:
        return self._events.setdefault(job_id, asyncio.Event())

    def notify(self, job_id: str) -> None:
        event = self._events.pop(job_id, None)
        if event is not None:
            event.set()

    @staticmethod
    async def wait(event: asyncio.Event, within: float) -> None:
        """Until the event taken by `listen` is set or `within` seconds pass."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await event.wait()


@dataclass(frozen=True)
class Ending:
    state: JobState
    result: bytes | None = None
    error_code: str = ""
    error_message: str = ""


async def with_retries(what: str, call: Callable[[], T]) -> T:
    """Run blocking `call` in a thread until the store answers (cancellation stops it)."""
    attempt = 0
    while True:
        try:
            return await asyncio.to_thread(call)
        except StoreUnavailable as error:
            wait = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
            if attempt == 0:
                logger.warning("job store unavailable (%s): %s; retrying", what, error)
            attempt += 1
            await asyncio.sleep(wait)


class EventWriter:
    """Stores one job's events in order, then its end; see the module docstring."""

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        replica: str,
        ttl_seconds: float,
        signals: JobSignals,
        on_lost: Callable[[], None],
    ) -> None:
        self._store = store
        self._job_id = job_id
        self._replica = replica
        self._ttl = ttl_seconds
        self._signals = signals
        self._on_lost = on_lost
        self._queue: asyncio.Queue[pb.ProcessEvent | Ending] = asyncio.Queue()
        self._task = asyncio.create_task(self._drain(), name=f"events-{job_id}")
        self.lost = False

    def put(self, event: pb.ProcessEvent) -> None:
        self._queue.put_nowait(event)

    async def finish(self, ending: Ending) -> bool:
        """Queue the end and wait until it (and every event before it) is stored;
        False when the job was no longer ours."""
        self._queue.put_nowait(ending)
        await asyncio.shield(self._task)
        return not self.lost

    def stop_now(self) -> None:
        """Stop writing at once, without waiting (a forced shutdown)."""
        self._task.cancel()

    async def abandon(self) -> None:
        """Stop writing (the job is no longer ours, or this process is stopping)."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _drain(self) -> None:
        while True:
            item = await self._queue.get()
            if self.lost:
                if isinstance(item, Ending):
                    return
                continue
            if isinstance(item, Ending):
                await self._end(item)
                return
            await self._append(item)

    async def _append(self, event: pb.ProcessEvent) -> None:
        kind = event.WhichOneof("event")
        stage = event.stage.stage if kind == "stage" else None
        progress = event.progress.SerializeToString() if kind == "progress" else None
        seconds = event.stage.audio_duration_seconds if kind == "stage" else None
        data = event.SerializeToString()
        sequence = await with_retries(
            "event",
            lambda: self._store.append_event(
                self._job_id, self._replica, data, stage, progress, seconds or None
            ),
        )
        if sequence == 0:
            self._lose()
        self._signals.notify(self._job_id)

    async def _end(self, ending: Ending) -> None:
        stored = await with_retries(
            "finish",
            lambda: self._store.finish(
                self._job_id,
                self._replica,
                ending.state,
                self._ttl,
                ending.result,
                ending.error_code,
                ending.error_message.replace("\x00", ""),  # PostgreSQL text holds no NUL
            ),
        )
        if not stored:
            self._lose()
        self._signals.notify(self._job_id)

    def _lose(self) -> None:
        if not self.lost:
            self.lost = True
            logger.warning("job %s is no longer this replica's; its run here stops", self._job_id)
            self._on_lost()
