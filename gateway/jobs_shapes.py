"""The JSON shapes of durable jobs over HTTP: a job, a page of jobs, a watched event.

A job's keys are those of `whospoke jobs --format json` (lower-case state names, ISO 8601
times in UTC, `null` for what has not happened), so a script reads one shape whether it
asked the CLI or the gateway; its `result` is `result_to_dict`'s, the document webhooks
carry. The gateway cannot import the CLI (services share only the contract), hence the
second copy of that mapping here.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.errors import bad_request
from whospoke.contract.results import result_to_dict
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import transcriber_pb2 as tpb

STATES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")
ACTIVE = frozenset({jpb.JOB_STATE_QUEUED, jpb.JOB_STATE_RUNNING})
STAGES = {
    pb.STAGE_DECODING: "decoding",
    pb.STAGE_TRANSCRIBING: "transcribing",
    pb.STAGE_DIARIZING: "diarizing",
    pb.STAGE_MERGING: "merging",
}
DELIVERY = {
    jpb.WEBHOOK_DELIVERY_PENDING: "pending",
    jpb.WEBHOOK_DELIVERY_DELIVERED: "delivered",
    jpb.WEBHOOK_DELIVERY_FAILED: "failed",
}


def state_name(state: int) -> str:
    """`JOB_STATE_RUNNING` → `running`."""
    return jpb.JobState.Name(state).removeprefix("JOB_STATE_").lower()  # type: ignore[arg-type]


def state_value(name: str, param: str = "state") -> jpb.JobState.ValueType:
    """A state name from a query, or a 400 naming the parameter."""
    if name not in STATES:
        raise bad_request(param, f"{name!r} is not one of {', '.join(STATES)}")
    return jpb.JobState.Value("JOB_STATE_" + name.upper())


def parse_labels(texts: list[str], param: str) -> list[jpb.Label]:
    """`key=value` strings as labels; the server checks keys, values and duplicates."""
    labels: list[jpb.Label] = []
    for text in texts:
        key, equals, value = text.partition("=")
        if not equals or not key:
            raise bad_request(param, f"{text!r} is not key=value")
        labels.append(jpb.Label(key=key, value=value))
    return labels


def _time(stamp: Timestamp, present: bool) -> str | None:
    """ISO 8601 in UTC, or None for a time that has not happened."""
    if not present:
        return None
    return stamp.ToDatetime().replace(microsecond=0).isoformat() + "Z"


def options_summary(options: pb.ProcessOptions) -> dict[str, Any]:
    """What the job was asked to do, in the form fields' words."""
    return {
        "language": options.language or None,
        "task": "translate" if options.task == tpb.TASK_TRANSLATE else "transcribe",
        "diarize": not options.skip_diarization,
        "word_timestamps": options.word_timestamps,
        "num_speakers": options.num_speakers if options.HasField("num_speakers") else None,
        "min_speakers": options.min_speakers if options.HasField("min_speakers") else None,
        "max_speakers": options.max_speakers if options.HasField("max_speakers") else None,
        "prompt": options.initial_prompt or None,
        "hotwords": options.hotwords or None,
        "multilingual": options.multilingual,
        "temperature": (round(options.temperature, 4) if options.HasField("temperature") else None),
    }


def _attempts(job: jpb.Job) -> list[dict[str, Any]]:
    return [
        {
            "number": a.number,
            "time": _time(a.time, a.HasField("time")),
            "http_status": a.http_status or None,
            "error": a.error or None,
            "duration_seconds": round(a.duration_seconds, 3),
        }
        for a in job.webhook_attempts
    ]


def job_to_dict(job: jpb.Job, with_result: bool = True) -> dict[str, Any]:
    """A job as `GET /v1/jobs/{id}` answers it (without `result` in lists)."""
    progress = job.progress
    body: dict[str, Any] = {
        "object": "job",
        "job_id": job.job_id,
        "state": state_name(job.state),
        "submit_time": _time(job.submit_time, job.HasField("submit_time")),
        "start_time": _time(job.start_time, job.HasField("start_time")),
        "end_time": _time(job.end_time, job.HasField("end_time")),
        "expire_time": _time(job.expire_time, job.HasField("expire_time")),
        "queue_position": job.queue_position,
        "stage": STAGES.get(job.stage),
        "progress": {
            "overall_percent": round(progress.overall_percent, 1),
            "decoding_percent": round(progress.decoding_percent, 1),
            "transcription_percent": round(progress.transcription_percent, 1),
            "diarization_percent": round(progress.diarization_percent, 1),
            "segment_count": progress.segment_count,
        },
        "timings": {
            "queue_seconds": round(job.timings.queue_seconds, 3),
            "processing_seconds": round(job.timings.processing_seconds, 3),
        },
        "error": (
            {"code": job.error.code, "message": job.error.message} if job.error.code else None
        ),
        "attempts": job.attempts,
        "replica": job.replica,
        "filename": job.filename,
        "audio_bytes": job.audio_bytes,
        "labels": {label.key: label.value for label in job.labels},
        "options": options_summary(job.options),
        "webhook_url": job.webhook_url or None,
        "webhook_delivery": DELIVERY.get(job.webhook_delivery),
        "webhook_attempts": _attempts(job),
        "idempotency_key": job.idempotency_key or None,
    }
    if with_result:
        succeeded = job.state == jpb.JOB_STATE_SUCCEEDED
        body["result"] = result_to_dict(job.result) if succeeded else None
    return body


def event_data(event: pb.ProcessEvent) -> tuple[str, dict[str, Any]]:
    """A watched event's SSE name (the `ProcessEvent` field that is set) and JSON data.

    The result is `result_to_dict`'s document; a stage is named in lower case; the others
    are their messages with the contract's field names, defaults included."""
    kind = event.WhichOneof("event") or "unknown"
    if kind == "result":
        return kind, result_to_dict(event.result)
    if kind == "stage":
        stage = event.stage
        seconds = stage.audio_duration_seconds
        return kind, {"stage": STAGES.get(stage.stage), "audio_duration_seconds": seconds}
    if kind == "unknown":
        return kind, {}
    data = MessageToDict(
        getattr(event, kind),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    return kind, data
