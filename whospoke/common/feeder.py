"""Reading the audio half of a config-first request stream, with backpressure.

Every streaming service reads its request stream the same way: after the config,
each message must carry an audio chunk; chunks are validated and pushed into the
job's session in a task of its own, while the response loop processes what has
arrived. Reading pauses while the session holds more than `max_buffer_seconds`
of unprocessed audio, which pushes back on the client through gRPC flow control.

A client that opens a stream and then sends nothing would hold a concurrency
slot forever, so every read of a client stream goes through `idle_guarded`: no
message within the idle limit ends the call with DEADLINE_EXCEEDED and frees the
slot. The clock runs only while the server waits for the client, never while
the server itself has paused reading.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, TypeVar

from whospoke.common.audio import SAMPLE_RATE, ChunkReader, Samples
from whospoke.common.errors import DeadlineExceeded, InvalidArgument

T = TypeVar("T")

PROGRESS_STEP_SECONDS = 1.0
"""Audio between two progress replies: their number follows the audio, not the messages."""


@dataclass(frozen=True)
class StreamLimits:
    """What one audio stream may cost a server."""

    max_buffer_seconds: float
    """Audio buffered ahead of processing before reading pauses (backpressure)."""
    idle_seconds: float = 30.0
    """Longest wait for the client's next message."""
    min_chunk_seconds: float = 0.1
    """Shortest chunk accepted, the last one excepted."""


class ProgressGate:
    """Lets a progress reply through once per `PROGRESS_STEP_SECONDS` of audio, and at the end."""

    def __init__(self) -> None:
        self._last = -PROGRESS_STEP_SECONDS

    def due(self, seconds: float, final: bool) -> bool:
        if final or seconds - self._last >= PROGRESS_STEP_SECONDS:
            self._last = seconds
            return True
        return False


async def idle_guarded(
    requests: AsyncIterator[T], idle_seconds: float, name: str
) -> AsyncIterator[T]:
    """The messages of a client stream; DEADLINE_EXCEEDED after `idle_seconds` of silence."""
    iterator = aiter(requests)
    while True:
        try:
            async with asyncio.timeout(idle_seconds):
                request = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise DeadlineExceeded(
                f"{name}: no message for {idle_seconds:g} s; send data continuously or "
                "close the stream (the server's --stream-idle-seconds)"
            ) from None
        yield request


class AudioSink(Protocol):
    """What the feeder pushes into: a job's session."""

    @property
    def buffered_seconds(self) -> float: ...

    def push(self, samples: Samples) -> None: ...


class AudioFeeder:
    """Use as `async with AudioFeeder(...) as feeder:`; reading stops on exit."""

    def __init__(
        self,
        requests: AsyncIterator[Any],
        sink: AudioSink,
        limits: StreamLimits,
        request_name: str,
    ) -> None:
        self._requests = requests
        self._sink = sink
        self._max_buffer = limits.max_buffer_seconds
        self._request_name = request_name
        self._reader = ChunkReader("audio", round(limits.min_chunk_seconds * SAMPLE_RATE))
        self._error: BaseException | None = None
        self._ended = False
        self._seen = 0
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AudioFeeder:
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def received_seconds(self) -> float:
        return self._reader.received_seconds

    async def _read(self) -> None:
        try:
            async for request in self._requests:
                if request.WhichOneof("request") != "audio":
                    raise InvalidArgument(
                        f"config: sent twice; only the first {self._request_name} carries it"
                    )
                self._sink.push(self._reader.read(request.audio))
                self._arrived.set()
                while self._sink.buffered_seconds > self._max_buffer:
                    self._room.clear()
                    await self._room.wait()
        except Exception as exc:  # handed to the response loop by wait_for_audio
            self._error = exc
        finally:
            self._ended = True
            self._arrived.set()

    async def wait_for_audio(self) -> bool:
        """Wait for audio not yet processed; True once the request stream has ended."""
        while True:
            assert self._task is not None, "use AudioFeeder as an async context manager"
            if self._error is not None:
                raise self._error
            if self._ended:
                return True
            if self._reader.received_samples > self._seen:
                self._seen = self._reader.received_samples
                return False
            self._arrived.clear()
            await self._arrived.wait()

    def drained(self) -> None:
        """Tell the reader that the session has processed what it buffered."""
        self._room.set()
