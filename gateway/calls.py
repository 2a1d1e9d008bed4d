"""One transcription through the orchestrator, shared by the JSON and the streaming answers:
the audio goes in (inline or uploaded), `Process` events come out and are recorded, and
whatever happens the upload is deleted and the call cancelled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable
from contextlib import aclosing
from typing import Any, TypeVar

import grpc
from starlette.datastructures import UploadFile
from starlette.requests import Request

from gateway.activity import Activity
from gateway.activity import Request as Tracked
from gateway.answers import diarized_segment
from gateway.errors import ApiError, from_rpc
from gateway.forms import Transcription
from gateway.upstream import Metadata, Upstream
from whospoke.v1 import orchestrator_pb2 as pb

T = TypeVar("T")


class ClientGone(Exception):
    """The HTTP client went away before its answer was ready."""


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result, or `ClientGone` (with `work` cancelled) if the client leaves first.

    A plain HTTP response is not cancelled by the server when its client disconnects;
    without this, an abandoned request would keep a transcription slot busy to the end.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        raise ClientGone
    finally:
        for pending in (task, watcher):
            pending.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)


class Call:
    """One request's `Process` call and its bookkeeping."""

    def __init__(
        self,
        upstream: Upstream,
        activity: Activity,
        request: Transcription,
        metadata: Metadata,
    ) -> None:
        self.upstream = upstream
        self.activity = activity
        self.request = request
        self.metadata = metadata
        self.upload_id = ""
        self.tracked: Tracked | None = None

    async def start(self, file: UploadFile) -> AsyncGenerator[pb.ProcessEvent, None]:
        """Send the audio and open the call; its events, recorded as they pass."""
        await self.upstream.check_model(self.request.model, self.metadata)
        audio, self.upload_id = await self.upstream.source(file, self.metadata)
        kind = "translation" if self.request.translate else "transcription"
        size = file.size or 0
        self.tracked = self.activity.begin(kind, file.filename or "", size, self.request.diarize)
        process = pb.ProcessRequest(options=self.request.options)
        if self.upload_id:
            process.upload_id = self.upload_id
        else:
            process.audio = audio
        return self._recorded(self.upstream.process(process, self.metadata))

    async def _recorded(
        self, events: AsyncGenerator[pb.ProcessEvent, None]
    ) -> AsyncGenerator[pb.ProcessEvent, None]:
        async with aclosing(events):
            async for event in events:
                if self.tracked is not None:
                    self.tracked.observe(event)
                yield event

    async def finish(self, state: str, error: str = "") -> None:
        """Record the outcome and delete the upload (when there was one)."""
        if self.tracked is not None:
            self.activity.end(self.tracked, state, error)
            self.tracked = None
        await self.upstream.forget(self.upload_id, self.metadata)

    async def result(self, events: AsyncGenerator[pb.ProcessEvent, None]) -> pb.ProcessResult:
        async with aclosing(events):
            async for event in events:
                if event.WhichOneof("event") == "result":
                    return event.result
        raise ApiError(502, "orchestrator: the call ended without a result", "server_error")


def stream_payload(event: pb.ProcessEvent, sent: int, diarize: bool) -> list[dict[str, Any]]:
    """The OpenAI stream events one `Process` event becomes (`sent`: segment events so far)."""
    kind = event.WhichOneof("event")
    if kind == "segment":
        text = event.segment.text
        return [{"type": "transcript.text.delta", "delta": text}] if text.strip() else []
    if kind == "attributed_segment" and diarize:
        return [diarized_segment(sent, event.attributed_segment)]
    if kind == "result":
        result = event.result
        late = list(result.segments)[sent:] if diarize else []
        segments = [diarized_segment(sent + i, s) for i, s in enumerate(late)]
        return [*segments, {"type": "transcript.text.done", "text": result.text}]
    return []


def sse(data: dict[str, Any]) -> dict[str, str]:
    return {"data": json.dumps(data, ensure_ascii=False)}


def failure(error: BaseException) -> ApiError:
    """Any failure of a call as the API error a client gets."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, grpc.aio.AioRpcError):
        return from_rpc(error)
    return ApiError(500, "internal error in the gateway", "server_error")
