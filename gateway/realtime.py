"""`/v1/realtime`: a live stream (`ProcessStream`) over a WebSocket, for browsers.

The messages mirror the gRPC ones in protobuf's JSON mapping (field names as in the
.proto), so one contract describes both: the first text message is a
`ProcessStreamRequest` with its `config` (plus, for browsers, which cannot set
headers on a WebSocket, an optional `"authorization": "Bearer ..."`); binary messages
are the audio, in the config's encoding; the text message `{"end": true}` ends the
audio (gRPC's half-close). Each `ProcessEvent` comes back as one text message, the
`result` last, and the server then closes with code 1000. A failure is one
`{"error": {"code", "message"}}` message (the gRPC status name and its details), then
a close: 1008 for the client's mistakes, 1013 (try again later) when the server is
busy or a backend is down, 1011 otherwise. A client that disconnects cancels the call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from google.protobuf import json_format

from gateway.state import Gateway
from gateway.upstream import caller_metadata
from whospoke.v1 import orchestrator_pb2 as pb

router = APIRouter()

CLIENT_MISTAKES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
TRY_LATER = {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}


class BadMessage(Exception):
    """A message the gateway cannot turn into a `ProcessStreamRequest`."""


def first_request(text: str) -> tuple[pb.ProcessStreamRequest, str | None]:
    """The config message and the authorization it carries, if any."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise BadMessage('config: send a JSON object {"config": {...}}')
        authorization = data.pop("authorization", None)
        request = json_format.ParseDict(data, pb.ProcessStreamRequest())
    except (ValueError, json_format.ParseError) as error:
        raise BadMessage(f"config: not a ProcessStreamRequest in JSON: {error}") from None
    if request.WhichOneof("request") != "config":
        raise BadMessage('config: the first message carries {"config": {...}}')
    return request, authorization if isinstance(authorization, str) else None


def event_json(event: pb.ProcessEvent) -> str:
    return json.dumps(
        json_format.MessageToDict(
            event, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        ),
        ensure_ascii=False,
    )


@router.websocket("/v1/realtime")
async def realtime(socket: WebSocket) -> None:
    await socket.accept()
    gateway: Gateway = socket.app.state.gateway
    try:
        first, authorization = first_request(await socket.receive_text())
    except (BadMessage, KeyError) as error:
        await _fail(socket, "INVALID_ARGUMENT", str(error), 1008)
        return
    except WebSocketDisconnect:
        return
    metadata = caller_metadata(authorization or socket.headers.get("authorization"))
    audio: asyncio.Queue[pb.ProcessStreamRequest | None] = asyncio.Queue(maxsize=64)
    await audio.put(first)
    call = gateway.upstream.orchestrator.ProcessStream(
        _drained(audio), metadata=metadata, timeout=gateway.config.request_timeout_seconds
    )
    reader = asyncio.create_task(_read(socket, audio, call))
    try:
        async for event in call:
            await socket.send_text(event_json(event))
        await socket.close(1000)
    except grpc.aio.AioRpcError as error:
        code = error.code()
        close = 1008 if code in CLIENT_MISTAKES else 1013 if code in TRY_LATER else 1011
        await _fail(socket, code.name, error.details() or code.name, close)
    except WebSocketDisconnect:
        pass  # the client left: the call is cancelled below
    finally:
        call.cancel()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def _read(
    socket: WebSocket, audio: asyncio.Queue[pb.ProcessStreamRequest | None], call: Any
) -> None:
    """Audio frames into the call, until `{"end": true}`; a text message that is not the end
    is passed on as a second config, which the orchestrator refuses by name. A client
    that leaves cancels the call."""
    try:
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                call.cancel()
                return
            if message.get("bytes") is not None:
                await audio.put(pb.ProcessStreamRequest(audio=message["bytes"]))
            elif _is_end(message.get("text")):
                await audio.put(None)
                return
            else:
                await audio.put(pb.ProcessStreamRequest(config=pb.LiveStreamConfig()))
    except WebSocketDisconnect:
        call.cancel()


def _is_end(text: Any) -> bool:
    try:
        data = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("end") is True


async def _drained(
    audio: asyncio.Queue[pb.ProcessStreamRequest | None],
) -> AsyncIterator[pb.ProcessStreamRequest]:
    while (request := await audio.get()) is not None:
        yield request


async def _fail(socket: WebSocket, code: str, message: str, close: int) -> None:
    try:
        await socket.send_text(json.dumps({"error": {"code": code, "message": message}}))
        await socket.close(close)
    except (WebSocketDisconnect, RuntimeError):
        pass  # already gone
