"""The shape every audio-stream servicer shares: config first, a slot, then the session.

A streaming model service reads a config message, waits for a concurrency slot,
then feeds the audio that follows into a session and runs the session in a
worker thread whenever new audio has arrived. Only what the session produces
and how it is put into messages differs between services, so the loop lives
here once: `open_stream` checks the first message and the idle limit, and
`run_session` yields the session's items plus a `PROGRESS` marker at most once
per second of audio.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from whospoke.common.config import ServerConfig
from whospoke.common.errors import InvalidArgument
from whospoke.common.feeder import (
    AudioFeeder,
    AudioSink,
    ProgressGate,
    StreamLimits,
    idle_guarded,
)
from whospoke.common.limiter import Limiter
from whospoke.common.metrics import Metrics
from whospoke.common.threads import iterate_in_thread

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Progress:
    """Marks the moment to send a progress message."""


PROGRESS = Progress()


class StreamSession(AudioSink, Protocol[T_co]):
    """What `run_session` drives: a model service's per-stream state."""

    def run(self, final: bool, stop: Any) -> Iterator[T_co]: ...


class StreamServiceConfig(Protocol):
    """The settings of a service that reads audio streams."""

    @property
    def server(self) -> ServerConfig: ...

    @property
    def max_concurrent_streams(self) -> int: ...

    @property
    def max_queued_streams(self) -> int: ...

    @property
    def max_buffer_seconds(self) -> float: ...

    @property
    def min_chunk_seconds(self) -> float: ...


@dataclass(frozen=True)
class StreamAdmission:
    """A service's slots and per-stream limits, built from its config."""

    limiter: Limiter
    limits: StreamLimits

    @classmethod
    def of(cls, config: StreamServiceConfig, metrics: Metrics) -> StreamAdmission:
        limiter = Limiter(
            config.max_concurrent_streams, config.max_queued_streams, on_change=metrics.set_load
        )
        limits = StreamLimits(
            config.max_buffer_seconds, config.server.stream_idle_seconds, config.min_chunk_seconds
        )
        return cls(limiter, limits)


async def open_stream(
    request_iterator: AsyncIterator[Any], limits: StreamLimits, request_name: str
) -> tuple[Any, AsyncIterator[Any]]:
    """The first message's config, and the rest of the stream (idle-guarded)."""
    requests = idle_guarded(request_iterator, limits.idle_seconds, request_name)
    first = await anext(requests, None)
    if first is None or first.WhichOneof("request") != "config":
        raise InvalidArgument(
            f"config: the first {request_name} must carry the config, audio chunks come after it"
        )
    return first.config, requests


async def run_session(
    session: StreamSession[T],
    requests: AsyncIterator[Any],
    limits: StreamLimits,
    request_name: str,
    position: Callable[[], float],
) -> AsyncGenerator[T | Progress, None]:
    """Feed `session` and run it as audio arrives, until the stream ends.

    Yields what `session.run` yields, and `PROGRESS` when `position()` (seconds
    of audio received plus processed) has advanced by a second, and at the end.
    Use it with `contextlib.aclosing`: closing it waits for the model's worker
    thread, so a caller's slot is freed only once the model is idle.
    """
    gate = ProgressGate()
    async with AudioFeeder(requests, session, limits, request_name) as feeder:
        while True:
            final = await feeder.wait_for_audio()
            async with aclosing(iterate_in_thread(partial(session.run, final))) as items:
                async for item in items:  # closed on exit: the model is idle again first
                    feeder.drained()
                    yield item
            feeder.drained()
            if gate.due(position(), final):
                yield PROGRESS
            if final:
                return
