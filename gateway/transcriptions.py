"""`POST /v1/audio/transcriptions` and `/v1/audio/translations`, as OpenAI's API has them.

The answer is the whole result in the asked `response_format`, or with `stream=true`
Server-Sent Events as the orchestrator produces them: `transcript.text.delta` per
transcript segment, `transcript.text.segment` per speaker-attributed segment (with
diarization) and `transcript.text.done` with the whole text. A client that disconnects
cancels its orchestrator call, streaming or not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from prometheus_client import Counter
from sse_starlette.sse import EventSourceResponse

from gateway.answers import answer
from gateway.calls import Call, ClientGone, failure, sse, stream_payload, until_disconnected
from gateway.errors import ApiError, bad_request
from gateway.forms import Fields, Transcription, transcription
from gateway.state import gateway, metadata
from gateway.upstream import WHISPER_ALIAS
from whospoke.v1 import orchestrator_pb2 as pb

router = APIRouter(tags=["audio"])
PING_SECONDS = 15
"""SSE comment lines keep idle streams (a long queue wait) open through proxies."""

FILE = File(description="The recording: any container and codec FFmpeg decodes.")


def form_fields(
    model: Annotated[str, Form(description="A served model id, or `whisper-1`.")] = WHISPER_ALIAS,
    language: Annotated[str | None, Form(description="ISO 639-1 code; empty: detect.")] = None,
    prompt: Annotated[str | None, Form(description="Preceding context for the model.")] = None,
    temperature: Annotated[float | None, Form(description="0 to 1; default 0.")] = None,
    response_format: Annotated[
        str, Form(description="json, text, srt, vtt, verbose_json or diarized_json.")
    ] = "json",
    timestamp_granularities: Annotated[
        list[str] | None,
        Form(alias="timestamp_granularities[]", description="word and/or segment."),
    ] = None,
    stream: Annotated[bool, Form(description="Answer with Server-Sent Events.")] = False,
    diarize: Annotated[
        bool | None, Form(description="Attribute speakers (default: on for diarized_json).")
    ] = None,
    num_speakers: Annotated[int | None, Form(description="Exact number of speakers.")] = None,
    min_speakers: Annotated[int | None, Form(description="Fewest speakers.")] = None,
    max_speakers: Annotated[int | None, Form(description="Most speakers.")] = None,
    hotwords: Annotated[str | None, Form(description="Words the decoder favours.")] = None,
    multilingual: Annotated[
        bool, Form(description="Detect the language of every utterance (code-switching).")
    ] = False,
    known_speaker_names: Annotated[
        list[str] | None,
        Form(
            alias="known_speaker_names[]",
            description="Names of people to recognise: enrolled voices, or one per reference.",
        ),
    ] = None,
    known_speaker_references: Annotated[
        list[str] | None,
        Form(
            alias="known_speaker_references[]",
            description="A data URL of each named person's voice (2 s to 2 min of them alone).",
        ),
    ] = None,
) -> Fields:
    return Fields(
        model=model.strip() or WHISPER_ALIAS,
        language=language,
        prompt=prompt,
        temperature=temperature,
        response_format=response_format.strip(),
        timestamp_granularities=tuple(timestamp_granularities or ()),
        stream=stream,
        diarize=diarize,
        num_speakers=num_speakers,
        min_speakers=min_speakers,
        max_speakers=max_speakers,
        hotwords=hotwords,
        multilingual=multilingual,
        known_speaker_names=tuple(n.strip() for n in known_speaker_names or () if n.strip()),
        known_speaker_references=tuple(known_speaker_references or ()),
    )


@router.post("/v1/audio/transcriptions", summary="Transcribe a recording, speakers included")
async def create_transcription(
    request: Request,
    file: Annotated[UploadFile, FILE],
    fields: Annotated[Fields, Depends(form_fields)],
) -> Response:
    return await _run(request, file, transcription(fields))


@router.post("/v1/audio/translations", summary="Translate a recording into English")
async def create_translation(
    request: Request,
    file: Annotated[UploadFile, FILE],
    fields: Annotated[Fields, Depends(form_fields)],
) -> Response:
    return await _run(request, file, transcription(fields, translate=True))


async def _run(request: Request, file: UploadFile, asked: Transcription) -> Response:
    if not file.size:
        raise bad_request("file", "the file is empty")
    state = gateway(request)
    call = Call(state.upstream, state.activity, asked, metadata(request))
    try:
        events = await call.start(file)
    except BaseException as error:
        await asyncio.shield(call.finish("failed", failure(error).message))
        raise
    audio_seconds = state.metrics.audio_seconds.labels("gateway")
    if asked.stream:
        return await _streamed(request, call, events, audio_seconds)
    try:
        result = await until_disconnected(request, call.result(events))
    except ClientGone:
        await call.finish("cancelled", "the client disconnected")
        return Response(status_code=499)
    except BaseException as error:
        await asyncio.shield(call.finish("failed", failure(error).message))
        raise
    audio_seconds.inc(result.audio_duration_seconds)
    await call.finish("succeeded")
    return answer(result, asked)


def _decoding(event: pb.ProcessEvent) -> bool:
    """Whether a job that got its slot at once is still decoding the file."""
    kind = event.WhichOneof("event")
    return kind == "progress" or (kind == "stage" and event.stage.stage == pb.STAGE_DECODING)


async def _first(events: AsyncGenerator[pb.ProcessEvent, None]) -> pb.ProcessEvent | None:
    """The first event past decoding; None when the call ended without one."""
    event = await anext(events, None)
    while event is not None and _decoding(event):
        event = await anext(events, None)
    return event


async def _streamed(
    request: Request,
    call: Call,
    events: AsyncGenerator[pb.ProcessEvent, None],
    audio_seconds: Counter,
) -> Response:
    """SSE from the first event past decoding (or a queue wait) on; a failure before it (a
    full queue, a bad option, a file FFmpeg cannot read) is still a plain error response
    with its status code, which the SDKs raise as their typed errors. A client that leaves
    while its file decodes cancels the call, as one that leaves the stream does."""
    try:
        first = await until_disconnected(request, _first(events))
    except ClientGone:
        await call.finish("cancelled", "the client disconnected")
        return Response(status_code=499)
    except BaseException as error:
        await asyncio.shield(call.finish("failed", failure(error).message))
        raise
    if first is None:
        await call.finish("failed", "no events")
        raise ApiError(502, "orchestrator: the call ended without a result", "server_error")
    return EventSourceResponse(_sse(call, first, events, audio_seconds), ping=PING_SECONDS)


async def _sse(
    call: Call,
    first: pb.ProcessEvent,
    events: AsyncGenerator[pb.ProcessEvent, None],
    audio_seconds: Counter,
) -> AsyncIterator[dict[str, Any]]:
    sent, outcome, why = 0, "cancelled", "the client disconnected"
    event: pb.ProcessEvent | None = first
    try:
        while event is not None:
            final = event.WhichOneof("event") == "result"
            if final:
                outcome, why = "succeeded", ""
                audio_seconds.inc(event.result.audio_duration_seconds)
            for data in stream_payload(event, sent, call.request.diarize):
                sent += data["type"] == "transcript.text.segment"
                yield sse(data)
            if final:
                break
            event = await anext(events, None)
        else:
            outcome, why = "failed", "orchestrator: the call ended without a result"
            yield sse(ApiError(502, why, "server_error").body())
    except Exception as error:
        api = failure(error)
        outcome, why = "failed", api.message
        yield sse(api.body())
    finally:
        await events.aclose()
        await asyncio.shield(call.finish(outcome, why))
