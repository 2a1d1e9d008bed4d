"""Reading the audio half of a config-first request stream, with backpressure.

Every streaming service reads its request stream the same way: after the config,
each message must carry an audio chunk; chunks are validated and pushed into the
job's session in a task of its own, while the response loop processes what has
arrived. Reading pauses while the session holds more than `max_buffer_seconds`
of unprocessed audio, which pushes back on the client through gRPC flow control.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Protocol

from whospoke.common.audio import ChunkReader, Samples
from whospoke.common.errors import InvalidArgument


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
        max_buffer_seconds: float,
        request_name: str,
    ) -> None:
        self._requests = requests
        self._sink = sink
        self._max_buffer = max_buffer_seconds
        self._request_name = request_name
        self._reader = ChunkReader("audio")
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
        finally:
            self._ended = True
            self._arrived.set()

    async def wait_for_audio(self) -> bool:
        """Wait for audio not yet processed; True once the request stream has ended."""
        while True:
            assert self._task is not None, "use AudioFeeder as an async context manager"
            if self._task.done():
                self._task.result()  # re-raise a reading error
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
