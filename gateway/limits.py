"""The request body limit and idle timeout, enforced while the body streams in.

A multipart form is parsed (and spooled to disk) before any route sees it, so a route
cannot refuse an oversized upload in time; this ASGI layer answers 413 as soon as the
declared length, or the bytes received so far, pass the limit, without reading the rest,
and 408 when a client stops sending in the middle of its body.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _error(status: int, message: str, code: str) -> tuple[Message, Message]:
    body = json.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": "file" if status == 413 else None,
                "code": code,
            }
        }
    ).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, idle_seconds: float = 60.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds

    def _too_large(self) -> tuple[Message, Message]:
        return _error(
            413,
            f"file: the request body is larger than the limit of {self.max_bytes} bytes "
            "(--max-upload-bytes)",
            "request_too_large",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_bytes:
            for message in self._too_large():
                await send(message)
            return
        state: dict[str, Any] = {"received": 0, "answered": False, "complete": False}

        async def guarded_send(message: Message) -> None:
            if not state["answered"]:
                await send(message)

        async def answer(messages: tuple[Message, Message]) -> Message:
            if not state["answered"]:
                state["answered"] = True
                for message in messages:
                    await send(message)
            return {"type": "http.disconnect"}

        async def guarded_receive() -> Message:
            if state["complete"]:
                return await receive()
            with anyio.move_on_after(self.idle_seconds) as idle:
                message = await receive()
            if idle.cancelled_caught:
                text = f"file: no body data for {self.idle_seconds:g} s"
                return await answer(_error(408, text, "request_timeout"))
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                state["complete"] = not message.get("more_body", False)
                if state["received"] > self.max_bytes:
                    return await answer(self._too_large())
            return message

        await self.app(scope, guarded_receive, guarded_send)
