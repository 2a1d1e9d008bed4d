"""One more try for a backend stream whose replica went away mid-job.

A job's audio is complete on disk before its backend calls start, so a call that
fails because its replica died (UNAVAILABLE: the process was killed, the pod
evicted, the connection reset) can simply be made again: gRPC's `round_robin`
has marked that replica down and sends the new call to another one. Whatever the
first call already delivered is not passed on twice: segments are skipped by
their index, progress up to the point already reported, warnings about audio
already decided. Decoding is deterministic by default (temperature 0), so the
second call's segments continue the first call's exactly; a job that asked for
sampling gets the later segments from the second call's own run. Only one retry:
a second failure is the backend's answer, and other errors (a bad argument, a
deadline) would fail the same way again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from orchestrator.domain import Progressed
from whospoke.common.errors import Unavailable
from whospoke.contract.transcription import Segment, SpeechWarning

logger = logging.getLogger(__name__)

Event = TypeVar("Event")


@dataclass
class _Delivered:
    """What the failed call already passed on."""

    segments: int = 0
    seconds: float = 0.0

    def new(self, event: object) -> bool:
        """Whether `event` (from the retried call) is not yet passed on; records it."""
        if isinstance(event, Segment):
            if event.index < self.segments:
                return False
            self.segments = event.index + 1
            return True
        if isinstance(event, Progressed):
            if event.seconds <= self.seconds:
                return False
            self.seconds = event.seconds
            return True
        if isinstance(event, SpeechWarning):
            return event.end > self.seconds
        return True


async def retried_once(
    start: Callable[[], AsyncIterator[Event]], backend: str
) -> AsyncIterator[Event]:
    """The events of `start()`; after an UNAVAILABLE failure, those of a second call,
    less what the first already delivered."""
    delivered = _Delivered()
    try:
        async with _closing(start()) as events:
            async for event in events:
                delivered.new(event)
                yield event
        return
    except Unavailable as error:
        logger.warning("%s call failed (%s); retrying once on another replica", backend, error)
    async with _closing(start()) as events:
        async for event in events:
            if delivered.new(event):
                yield event


@asynccontextmanager
async def _closing(events: AsyncIterator[Event]) -> AsyncIterator[AsyncIterator[Event]]:
    """`events`, closed on the way out (a generator left early cancels its call)."""
    try:
        yield events
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
