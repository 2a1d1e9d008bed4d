"""Durable jobs over HTTP: the orchestrator's `whospoke.v1.Jobs` service as REST and SSE.

A job outlives the request that made it: `POST /v1/jobs` answers at once (202 and a
`Location`), the recording is processed when a slot is free, and the client polls
`GET /v1/jobs/{id}`, follows `GET /v1/jobs/{id}/events`, or receives the signed webhook
the orchestrator sends to `callback_url` when the job ends. Every call carries the
caller's own `Authorization`, so a client sees and changes only what the orchestrator
lets its token see; the gateway's own token is never used here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, File, Form, Header, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from sse_starlette.sse import EventSourceResponse

from gateway.answers import answer
from gateway.errors import ApiError, bad_request, from_rpc
from gateway.forms import RESPONSE_FORMATS, Fields, Transcription, transcription
from gateway.jobs_shapes import (
    ACTIVE,
    event_data,
    job_to_dict,
    parse_labels,
    state_name,
    state_value,
)
from gateway.state import gateway, metadata
from gateway.transcriptions import PING_SECONDS, form_fields
from gateway.upstream import Metadata
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import jobs_pb2_grpc as jpb_grpc
from whospoke.v1 import transcriber_pb2 as tpb

router = APIRouter(tags=["jobs"])
TASKS = ("transcribe", "translate")
CANCEL_WAIT_SECONDS = 10.0
"""How long `DELETE` waits for a running job to stop once its cancel is requested."""
NO_REPLAY = 1 << 62
"""An `after_sequence` past every event: a watch that only tells when the job ends."""
JobId = Annotated[str, Path(description="The id `POST /v1/jobs` answered with.")]

SUBMIT = """\
Queue a recording; the answer comes at once: **202** with `{"object": "job", "job_id",
"state": "queued", "queue_position", "existing": false}` and `Location: /v1/jobs/{job_id}`.

Takes the transcription form fields (`model`, `language`, `prompt`, `temperature`,
`timestamp_granularities[]`, `diarize`, speaker counts, `hotwords`, `multilingual`), plus:
`task` (`transcribe` or `translate`), `callback_url` (receives a signed Standard Webhooks
POST when the job ends), `idempotency_key` (or the `Idempotency-Key` header: a retry with
the same key answers **200** with the first job and `"existing": true`) and `labels`,
repeated form fields of `key=value` (`-F labels=team=blue -F labels=lang=en`).
Diarization is on unless `diarize=false`. `response_format` is ignored (the result is one
JSON document; `GET /v1/jobs/{id}?format=srt` renders it); `stream=true` is refused:
follow `GET /v1/jobs/{id}/events` instead.
"""
DELETE = """\
A queued or running job is cancelled and answered as a job with `"deleted": false`:
**200** once it has stopped (`"state": "cancelled"`, or how it ended if it ended first), or
**202** with `"state": "running"` if its replica has not stopped it within a few seconds (it
will). A job that has ended (succeeded, failed, cancelled) is deleted with its audio and
result: `{"object": "job", "job_id", "state": "deleted", "deleted": true}`. So DELETE once
cancels, twice removes.
"""
EVENTS = """\
Server-Sent Events of the job, replayed from its start, then live until it ends. Each has
`id:` (its sequence; send `Last-Event-ID` or `?after=` to resume after it), `event:`
(queued, stage, progress, segment, attributed_segment, warning, result) and `data:`
(JSON; the result event's is the same document as `GET /v1/jobs/{id}`'s `result`).
A job that failed or was cancelled ends with `event: error` and OpenAI's error JSON.
"""


def _options(fields: Fields, task: str) -> jpb.SubmitJobRequest:
    """The checked form fields as a submission (without audio, webhook, key or labels)."""
    if fields.stream:
        raise bad_request(
            "stream", "a job answers at once; follow GET /v1/jobs/{job_id}/events instead"
        )
    if task not in TASKS:
        raise bad_request("task", f"{task!r} is not transcribe or translate")
    diarize = True if fields.diarize is None else fields.diarize
    asked = dataclasses.replace(fields, response_format="json", diarize=diarize)
    options = transcription(asked, translate=task == "translate").options
    if "word" in fields.timestamp_granularities:
        options.word_timestamps = True
    return jpb.SubmitJobRequest(options=options)


def _key(form: str | None, header: str | None) -> str:
    if form and header and form != header:
        raise bad_request("idempotency_key", "differs from the Idempotency-Key header")
    return form or header or ""


@router.post("/v1/jobs", status_code=202, summary="Queue a recording", description=SUBMIT)
async def submit_job(
    request: Request,
    file: Annotated[UploadFile, File(description="The recording (any format FFmpeg reads).")],
    fields: Annotated[Fields, Depends(form_fields)],
    task: Annotated[str, Form(description="transcribe or translate.")] = "transcribe",
    callback_url: Annotated[str | None, Form(description="Webhook URL.")] = None,
    idempotency_key: Annotated[str | None, Form(description="Makes retries safe.")] = None,
    labels: Annotated[list[str] | None, Form(description="key=value, repeated.")] = None,
    idempotency_header: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    submission = _options(fields, task)
    submission.webhook_url = (callback_url or "").strip()
    submission.idempotency_key = _key(idempotency_key, idempotency_header)
    submission.labels.extend(parse_labels(labels or [], "labels"))
    submission.filename = (file.filename or "")[:255]
    if not file.size:
        raise bad_request("file", "the file is empty")
    state, meta = gateway(request), metadata(request)
    await state.upstream.check_model(fields.model, meta)
    audio, upload_id = await state.upstream.source(file, meta)
    if upload_id:
        submission.upload_id = upload_id
    else:
        submission.audio = audio
    try:
        response: jpb.SubmitJobResponse = await state.upstream.jobs.SubmitJob(
            submission, metadata=meta, timeout=state.config.request_timeout_seconds
        )
    finally:  # the job keeps its own copy of the audio
        await state.upstream.forget(upload_id, meta)
    body: dict[str, Any] = {
        "object": "job",
        "job_id": response.job_id,
        "state": "queued",
        "queue_position": response.queue_position,
        "existing": response.existing,
    }
    if response.existing:  # an earlier submission: say how it stands now
        job = await _get(request, response.job_id)
        body["state"] = state_name(job.state)
    location = {"Location": f"/v1/jobs/{response.job_id}"}
    return JSONResponse(body, status_code=200 if response.existing else 202, headers=location)


def _stub(request: Request) -> tuple[jpb_grpc.JobsAsyncStub, Metadata, float]:
    state = gateway(request)
    return state.upstream.jobs, metadata(request), state.upstream.timeout


async def _get(request: Request, job_id: str) -> jpb.Job:
    stub, meta, timeout = _stub(request)
    job: jpb.Job = await stub.GetJob(
        jpb.GetJobRequest(job_id=job_id), metadata=meta, timeout=timeout
    )
    return job


def _rendering(job: jpb.Job, fmt: str) -> Response:
    """The result in a transcription `response_format` (srt, vtt, text ...)."""
    if fmt not in RESPONSE_FORMATS:
        raise bad_request("format", f"{fmt!r} is not one of {', '.join(RESPONSE_FORMATS)}")
    if job.state != jpb.JOB_STATE_SUCCEEDED:
        raise ApiError(
            409,
            f"job {job.job_id} has no result: it is {state_name(job.state)}",
            code="job_not_succeeded",
        )
    options = job.options
    asked = Transcription(
        model="",
        response_format=fmt,
        stream=False,
        diarize=not options.skip_diarization,
        words=options.word_timestamps,
        translate=options.task == tpb.TASK_TRANSLATE,
        options=options,
    )
    return answer(job.result, asked)


@router.get("/v1/jobs/{job_id}", summary="A job: state, progress, and its result once done")
async def get_job(
    request: Request,
    job_id: JobId,
    fmt: Annotated[
        str | None,
        Query(alias="format", description="The result only, as json, text, srt, vtt, ..."),
    ] = None,
) -> Response:
    job = await _get(request, job_id)
    if fmt is not None:
        return _rendering(job, fmt)
    return JSONResponse(job_to_dict(job))


@router.get("/v1/jobs", summary="Jobs, newest first, a page at a time (without results)")
async def list_jobs(
    request: Request,
    state: Annotated[str | None, Query(description="queued, running, succeeded, ...")] = None,
    label: Annotated[list[str] | None, Query(description="key=value; repeat for all.")] = None,
    page_size: Annotated[int | None, Query(ge=1, le=1000, description="Default 50.")] = None,
    page_token: Annotated[str | None, Query(description="A page's next_page_token.")] = None,
) -> JSONResponse:
    asked = jpb.ListJobsRequest(
        labels=parse_labels(label or [], "label"),
        page_size=page_size or 0,
        page_token=page_token or "",
    )
    if state:
        asked.state = state_value(state)
    stub, meta, timeout = _stub(request)
    page: jpb.ListJobsResponse = await stub.ListJobs(asked, metadata=meta, timeout=timeout)
    return JSONResponse(
        {
            "object": "list",
            "data": [job_to_dict(job, with_result=False) for job in page.jobs],
            "next_page_token": page.next_page_token or None,
            "has_more": bool(page.next_page_token),
        }
    )


@router.delete(
    "/v1/jobs/{job_id}", summary="Cancel a job, or delete one that ended", description=DELETE
)
async def delete_job(request: Request, job_id: JobId) -> JSONResponse:
    stub, meta, timeout = _stub(request)
    job = await _get(request, job_id)
    if job.state in ACTIVE:
        cancel = jpb.CancelJobRequest(job_id=job_id)
        job = await stub.CancelJob(cancel, metadata=meta, timeout=timeout)
        if job.state in ACTIVE:  # running: its replica stops it at its next step
            await _ended(stub, job_id, meta)
            job = await _get(request, job_id)
        status = 202 if job.state in ACTIVE else 200
        body = {**job_to_dict(job, with_result=False), "deleted": False}
        return JSONResponse(body, status_code=status)
    await stub.DeleteJob(jpb.DeleteJobRequest(job_id=job_id), metadata=meta, timeout=timeout)
    return JSONResponse({"object": "job", "job_id": job_id, "state": "deleted", "deleted": True})


async def _ended(stub: jpb_grpc.JobsAsyncStub, job_id: str, meta: Metadata) -> None:
    """Wait, a few seconds at most, for a job to end: a watch that replays nothing ends
    when the job does."""
    watch = jpb.WatchJobRequest(job_id=job_id, after_sequence=NO_REPLAY)
    with suppress(grpc.aio.AioRpcError):
        async for _ in stub.WatchJob(watch, metadata=meta, timeout=CANCEL_WAIT_SECONDS):
            pass


def _resume(after: int | None, last_event_id: str | None) -> int:
    """Where a watch resumes: the browser's `Last-Event-ID` wins over `?after=`."""
    if last_event_id is None or not last_event_id.strip():
        return after or 0
    text = last_event_id.strip()
    if not text.isdigit():
        raise bad_request("Last-Event-ID", f"{text!r} is not an event id (a sequence number)")
    return int(text)


@router.get(
    "/v1/jobs/{job_id}/events", summary="Follow a job (Server-Sent Events)", description=EVENTS
)
async def job_events(
    request: Request,
    job_id: JobId,
    after: Annotated[int | None, Query(ge=0, description="Events after this id.")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    watch = jpb.WatchJobRequest(job_id=job_id, after_sequence=_resume(after, last_event_id))
    await _get(request, job_id)  # an unknown job is a 404, not an event stream
    stub, meta, _ = _stub(request)
    return EventSourceResponse(_events(stub, watch, meta), ping=PING_SECONDS)


async def _events(
    stub: jpb_grpc.JobsAsyncStub, watch: jpb.WatchJobRequest, meta: Metadata
) -> AsyncIterator[dict[str, str]]:
    """The `WatchJob` stream as SSE; a client that leaves cancels the call (not the job)."""
    call = stub.WatchJob(watch, metadata=meta)
    try:
        try:
            async for event in call:
                kind, data = event_data(event)
                message = {"event": kind, "data": json.dumps(data, ensure_ascii=False)}
                if event.sequence:
                    message["id"] = str(event.sequence)
                yield message
                if kind == "result":
                    return
            why = "orchestrator: the watch ended without a result"
            error = ApiError(502, why, "server_error")
        except grpc.aio.AioRpcError as failed:
            error = _ending(failed)
        yield {"event": "error", "data": json.dumps(error.body(), ensure_ascii=False)}
    finally:
        call.cancel()


def _ending(error: grpc.aio.AioRpcError) -> ApiError:
    """Why a watch ended without a result: the job's own failure, or its cancellation
    (a CANCELLED status here is the job's: the gateway only cancels calls it has left)."""
    if error.code() == grpc.StatusCode.CANCELLED:
        return ApiError(409, error.details() or "the job was cancelled", code="job_cancelled")
    return from_rpc(error)
