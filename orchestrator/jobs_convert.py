"""Stored job records to `whospoke.v1.Job` messages, and the checks on what clients send."""

from __future__ import annotations

import re

from google.protobuf.timestamp_pb2 import Timestamp

from orchestrator.ids import ID_PATTERN
from orchestrator.store import JobRecord, JobState, QueueStats
from whospoke.common.errors import InvalidArgument, quoted
from whospoke.v1 import jobs_pb2 as jobs
from whospoke.v1 import orchestrator_pb2 as pb

LABEL_KEY = re.compile(r"[A-Za-z0-9_.-]{1,63}")
MAX_LABELS = 16
MAX_LABEL_VALUE = 255
MAX_IDEMPOTENCY_KEY = 255


def checked_job_id(job_id: str) -> str:
    if not ID_PATTERN.fullmatch(job_id):
        raise InvalidArgument(f"job_id: {quoted(job_id)} is not a job id")
    return job_id


def checked_text(text: str, field: str) -> str:
    """Refuse control characters (NUL above all, which PostgreSQL text cannot hold)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidArgument(f"{field}: control characters are not allowed")
    return text


def checked_labels(labels: list[jobs.Label], field: str = "labels") -> tuple[tuple[str, str], ...]:
    if len(labels) > MAX_LABELS:
        raise InvalidArgument(f"{field}: {len(labels)} labels; at most {MAX_LABELS}")
    seen: set[str] = set()
    for label in labels:
        if not LABEL_KEY.fullmatch(label.key):
            raise InvalidArgument(
                f"{field}: key {quoted(label.key)} must be 1 to 63 letters, digits, '-', '_', '.'"
            )
        checked_text(label.value, field)
        if len(label.value) > MAX_LABEL_VALUE:
            raise InvalidArgument(f"{field}: value of {label.key!r} is over 255 characters")
        if label.key in seen:
            raise InvalidArgument(f"{field}: key {label.key!r} given twice")
        seen.add(label.key)
    return tuple((label.key, label.value) for label in labels)


def checked_idempotency_key(key: str) -> str:
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument("idempotency_key: over 255 characters")
    return checked_text(key, "idempotency_key")


def _time(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def job_to_pb(record: JobRecord, now: float, position: int = 0) -> jobs.Job:
    """The client's view of a job; `result` only when the record carries one."""
    job = jobs.Job(
        job_id=record.job_id,
        state=int(record.state),  # type: ignore[arg-type]
        queue_position=position if record.state is JobState.QUEUED else 0,
        stage=record.stage,  # type: ignore[arg-type]
        attempts=record.attempts,
        replica=record.replica,
        options=pb.ProcessOptions.FromString(record.options),
        labels=[jobs.Label(key=k, value=v) for k, v in record.labels],
        filename=record.filename,
        audio_bytes=record.audio_bytes,
        webhook_url=record.webhook_url,
        webhook_delivery=int(record.webhook_delivery),  # type: ignore[arg-type]
        idempotency_key=record.idempotency_key,
    )
    for name, seconds in (
        ("submit_time", record.submitted_at),
        ("start_time", record.started_at),
        ("end_time", record.ended_at),
        ("expire_time", record.expires_at),
    ):
        stamp = _time(seconds)
        if stamp is not None:
            getattr(job, name).CopyFrom(stamp)
    if record.progress:
        job.progress.ParseFromString(record.progress)
    _timings(job, record, now)
    if record.result:
        job.result.ParseFromString(record.result)
        job.timings.stages.CopyFrom(job.result.timings)
    if record.error_code:
        job.error.code, job.error.message = record.error_code, record.error_message
    for attempt in record.webhook_attempts:
        job.webhook_attempts.append(
            jobs.WebhookAttempt(
                number=attempt.number,
                time=_time(attempt.time),
                http_status=attempt.http_status,
                error=attempt.error,
                duration_seconds=attempt.duration,
            )
        )
    return job


def _timings(job: jobs.Job, record: JobRecord, now: float) -> None:
    if record.started_at is None:
        end_of_wait = record.ended_at if record.ended_at is not None else now
        job.timings.queue_seconds = max(0.0, end_of_wait - record.submitted_at)
        return
    job.timings.queue_seconds = max(0.0, record.started_at - record.submitted_at)
    end = record.ended_at if record.ended_at is not None else now
    job.timings.processing_seconds = max(0.0, end - record.started_at)


def stats_to_pb(stats: QueueStats, store: str, running_here: int) -> pb.JobQueueStats:
    return pb.JobQueueStats(
        queued=stats.queued,
        running=stats.running,
        succeeded=stats.succeeded,
        failed=stats.failed,
        cancelled=stats.cancelled,
        oldest_queued_seconds=stats.oldest_queued_seconds,
        average_queue_seconds=stats.average_queue_seconds,
        average_processing_seconds=stats.average_processing_seconds,
        store=store,
        running_here=running_here,
    )
