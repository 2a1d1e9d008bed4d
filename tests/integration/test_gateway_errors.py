"""The gateway's failures as the official `openai` SDK types them, and what they cost.

Each refusal is OpenAI's error JSON with the status the SDK turns into its typed
exception, `param` naming the form field at fault. An oversized body is refused while it
is still arriving (raw sockets show the 413 comes before the rest is sent), and a client
that goes away cancels its job on the orchestrator, streaming or not.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from tests.fakes import wav_bytes
from tests.integration.test_gateway_openai import WITHIN, Transcriber, stack, uploads_left
from whospoke.common.config import ServerConfig

LIMIT = 64 << 10
"""The gateway's `max_upload_bytes` in the body limit tests."""


async def test_bad_fields_are_bad_requests_naming_the_field(tmp_path: Path) -> None:
    cases: dict[str, dict[str, Any]] = {
        "response_format": {"extra_body": {"response_format": "docx"}},
        "temperature": {"temperature": 1.5},
        "file": {"file": ("a.wav", b"")},
    }
    async with stack(tmp_path) as s:
        for param, fields in cases.items():
            with pytest.raises(openai.BadRequestError) as caught:
                await s.client.audio.transcriptions.create(
                    **{"file": ("a.wav", wav_bytes(1)), "model": "whisper-1", **fields}
                )
            assert caught.value.param == param
            assert _error(caught.value)["message"].startswith(f"{param}: ")
        assert s.transcriber.options == [], "nothing reached the transcriber"


def _error(error: openai.APIStatusError) -> dict[str, Any]:
    """The `error` object of OpenAI's error JSON (the SDK keeps it as the body)."""
    assert isinstance(error.body, dict)
    return error.body


async def test_a_form_without_a_file_is_a_bad_request(tmp_path: Path) -> None:
    async with stack(tmp_path) as s, httpx2.AsyncClient() as http:
        reply = await http.post(
            s.gateway.url + "/v1/audio/transcriptions",
            files={"audio": ("a.wav", wav_bytes(1))},
            data={"model": "whisper-1"},
        )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert (error["param"], error["type"]) == ("file", "invalid_request_error")
    assert error["message"].startswith("file: ")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("inline_bytes", [16 << 20, 1024], ids=["inline", "uploaded"])
async def test_an_undecodable_file_is_a_bad_request_on_file(
    tmp_path: Path, inline_bytes: int, stream: bool
) -> None:
    """The orchestrator's decoding error, a 400 even when a stream was asked for: the stream
    only starts once the file has been decoded."""
    noise = os.urandom(4096)
    async with stack(tmp_path, inline_bytes=inline_bytes) as s:
        with pytest.raises(openai.BadRequestError) as caught:
            await s.client.audio.transcriptions.create(
                file=("a.wav", noise), model="whisper-1", stream=stream
            )
    assert caught.value.param == "file" and caught.value.code == "invalid_value"
    assert "cannot decode the input" in _error(caught.value)["message"]


async def test_an_unknown_model_is_not_found(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        with pytest.raises(openai.NotFoundError) as transcribing:
            await s.client.audio.transcriptions.create(file=("a.wav", wav_bytes(1)), model="nope")
        with pytest.raises(openai.NotFoundError) as retrieving:
            await s.client.models.retrieve("nope")
    assert transcribing.value.param == "model" and transcribing.value.code == "model_not_found"
    assert "fake-whisper" in transcribing.value.message, "the message names what is served"
    assert retrieving.value.code == "model_not_found"


async def test_the_callers_bearer_token_is_what_the_orchestrator_checks(tmp_path: Path) -> None:
    server = ServerConfig(port=0, auth_tokens=("secret",))
    async with stack(tmp_path, server=server, api_key="wrong") as s:
        with pytest.raises(openai.AuthenticationError) as caught:
            await s.client.audio.transcriptions.create(
                file=("a.wav", wav_bytes(1)), model="whisper-1"
            )
        with pytest.raises(openai.AuthenticationError):
            await s.client.models.list()
        right = s.client.with_options(api_key="secret")
        result = await right.audio.transcriptions.create(
            file=("a.wav", wav_bytes(1)), model="whisper-1"
        )
        models = [m.id async for m in right.models.list()]
    assert caught.value.code == "invalid_api_key"
    assert result.text == "one two" and "fake-whisper" in models


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_full_server_answers_429_with_retry_after(tmp_path: Path, stream: bool) -> None:
    hold = asyncio.Event()
    limits = {"max_concurrent_jobs": 1, "max_queued_jobs": 0}
    async with stack(tmp_path, Transcriber(hold=hold), limits=limits) as s:
        audio = s.client.audio.transcriptions
        busy = asyncio.create_task(audio.create(file=("a.wav", wav_bytes(1)), model="whisper-1"))
        async with asyncio.timeout(WITHIN):
            await s.transcriber.started.wait()
        with pytest.raises(openai.RateLimitError) as caught:
            await audio.create(file=("a.wav", wav_bytes(1)), model="whisper-1", stream=stream)
        hold.set()
        assert (await busy).text == "one two", "the held job still finishes"
    assert caught.value.response.headers["retry-after"].isdigit()
    assert caught.value.code == "rate_limit_exceeded"


async def _sent(url: str, pieces: list[bytes]) -> tuple[int, dict[str, Any]]:
    """Status and JSON error of the one response to `pieces`, written to a raw socket one
    after the other; the server answers and closes without the request having ended."""
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
        async with asyncio.timeout(WITHIN):
            raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    error = json.loads(body)["error"]
    assert isinstance(error, dict)
    return int(head.split()[1]), error


def _head(extra: str) -> bytes:
    lines = [
        "POST /v1/audio/transcriptions HTTP/1.1",
        "Host: gateway",
        "Content-Type: multipart/form-data; boundary=b",
        extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


PART = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'


async def test_a_declared_oversized_body_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    async with stack(tmp_path, max_upload_bytes=LIMIT) as s:
        declared = _head(f"Content-Length: {LIMIT * 16}") + PART + bytes(LIMIT // 4)
        status, error = await _sent(s.gateway.url, [declared])
    assert status == 413
    assert (error["param"], error["code"]) == ("file", "request_too_large")
    assert s.transcriber.options == []


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(tmp_path: Path) -> None:
    async with stack(tmp_path, max_upload_bytes=LIMIT) as s:
        # The last chunk (0) is never sent: the answer cannot have waited for the end.
        chunks = [_chunk(PART + bytes(LIMIT // 2)), _chunk(bytes(LIMIT))]
        status, error = await _sent(s.gateway.url, [_head("Transfer-Encoding: chunked"), *chunks])
    assert status == 413 and error["code"] == "request_too_large"
    assert s.transcriber.options == []


async def test_an_upload_over_the_orchestrators_limit_is_413_on_file(tmp_path: Path) -> None:
    async with stack(tmp_path, upload_bytes=LIMIT, inline_bytes=1024) as s:
        with pytest.raises(openai.APIStatusError) as caught:
            await s.client.audio.transcriptions.create(
                file=("a.wav", wav_bytes(3)), model="whisper-1"
            )
        left = uploads_left(s.uploads)
    assert caught.value.status_code == 413 and caught.value.code == "request_too_large"
    assert caught.value.param == "file" and left == []


async def test_a_client_leaving_a_stream_cancels_its_job(tmp_path: Path) -> None:
    hold = asyncio.Event()
    async with stack(tmp_path, Transcriber(hold=hold, hold_from=1)) as s:
        stream = await s.client.audio.transcriptions.create(
            file=("a.wav", wav_bytes(3)), model="whisper-1", stream=True
        )
        async with asyncio.timeout(WITHIN):
            await anext(aiter(stream))
            await stream.close()
            await s.transcriber.cancelled.wait()
        recent = list(s.gateway.state.activity.recent)
    assert not hold.is_set()
    assert [r.state for r in recent] == ["cancelled"]


async def test_a_client_leaving_a_plain_request_cancels_its_job(tmp_path: Path) -> None:
    hold = asyncio.Event()
    async with stack(tmp_path, Transcriber(hold=hold)) as s:
        request = asyncio.create_task(
            s.client.audio.transcriptions.create(file=("a.wav", wav_bytes(3)), model="whisper-1")
        )
        async with asyncio.timeout(WITHIN):
            await s.transcriber.started.wait()
            request.cancel()
            await s.transcriber.cancelled.wait()
        recent = list(s.gateway.state.activity.recent)
    assert request.cancelled() and not hold.is_set()
    assert [r.state for r in recent] == ["cancelled"]


async def test_a_client_leaving_while_its_file_decodes_cancels_its_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream starts once decoding is over, so that a file FFmpeg cannot read is a 400; a
    client that gives up before then must still cancel the job and free its upload."""
    decoding, cancelled = asyncio.Event(), asyncio.Event()

    async def held(*args: Any, **kwargs: Any) -> Any:
        decoding.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    monkeypatch.setattr("orchestrator.jobs.spool", held)
    async with stack(tmp_path, inline_bytes=1024) as s:
        upstream, forgotten = s.gateway.state.upstream, asyncio.Event()
        forget = upstream.forget

        async def forgetting(*args: Any) -> None:
            await forget(*args)
            forgotten.set()

        monkeypatch.setattr(upstream, "forget", forgetting)
        request = asyncio.create_task(
            s.client.audio.transcriptions.create(
                file=("a.wav", wav_bytes(2)), model="whisper-1", stream=True
            )
        )
        async with asyncio.timeout(WITHIN):
            await decoding.wait()
            request.cancel()
            await cancelled.wait()
            await forgotten.wait()  # the upload goes once the gateway has seen the client go
        left = uploads_left(s.uploads)
        recent = list(s.gateway.state.activity.recent)
    assert [r.state for r in recent] == ["cancelled"] and left == []
    assert not s.gateway.state.activity.running
