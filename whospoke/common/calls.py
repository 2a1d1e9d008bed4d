"""Client-streaming gRPC calls that report the server's own status when it ends them early.

grpc.aio's request-iterator style (`stub.Method(iterator)`) loses that status in a
common case: when the server ends the call (say INVALID_ARGUMENT for a bad
config) while a request message is still being written, typically one waiting
on flow control because the server stopped reading, the pending write fails and
grpc.aio replaces the status the server sent by INTERNAL "Internal error from
Core" (grpc 1.85: `_StreamRequestMixin._write` calls `set_internal_error`). The
caller then reports an internal error, retryable-looking once translated,
instead of the server's answer; `await call.code()` says INTERNAL too.

Here the requests are written by a task that is cancelled the moment the call
ends (a done callback runs as the status arrives), so no write is left to fail
and the call keeps the status the server sent. A failure of the request
iterator itself (a read error on the caller's side) cancels the call and is
raised to the caller as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any, TypeVar

import grpc

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class _Writer:
    """Writes `requests` to `call` until they end or the call does."""

    def __init__(self, call: Any, requests: AsyncIterable[Any]) -> None:
        self._call = call
        self._task = asyncio.ensure_future(self._write(requests))
        call.add_done_callback(lambda _: self._task.cancel())
        self._task.add_done_callback(self._written)

    async def _write(self, requests: AsyncIterable[Any]) -> None:
        try:
            async for request in requests:
                await self._call.write(request)
            await self._call.done_writing()
        except asyncio.InvalidStateError:
            return  # the call ended between two writes: its status tells why

    def _written(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._call.cancel()

    def reraise(self) -> None:
        """Raise the request iterator's failure, if that is why the call was cancelled."""
        task = self._task
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            return  # our caller is being cancelled: that cancellation goes first
        error = task.exception() if task.done() and not task.cancelled() else None
        if error is not None:
            raise error

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def stream_stream(
    call: grpc.aio.StreamStreamCall[Req, Resp], requests: AsyncIterable[Req]
) -> AsyncGenerator[Resp, None]:
    """The responses of `call` (made without a request iterator) while `requests` are sent.

    Raises `grpc.aio.AioRpcError` with the server's status; leaving early cancels
    the call.
    """
    writer = _Writer(call, requests)
    try:
        async for response in call:
            yield response
    except asyncio.CancelledError:
        writer.reraise()
        raise
    finally:
        call.cancel()
        await writer.close()
