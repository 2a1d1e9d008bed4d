"""How `whospoke job` and `whospoke jobs` show jobs: a summary, a table, or JSON.

People read the summary and the table; scripts read the JSON, whose keys and
lower-case state names stay fixed (`whospoke jobs --format json | jq`).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from rich.table import Table

from whospoke.cli.errors import CliError, one_line, status_error
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import orchestrator_pb2 as pb

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
ENDED = frozenset({jpb.JOB_STATE_SUCCEEDED, jpb.JOB_STATE_FAILED, jpb.JOB_STATE_CANCELLED})


def state_name(state: int) -> str:
    """`JOB_STATE_RUNNING` → `running` (the `--state` spelling)."""
    return jpb.JobState.Name(state).removeprefix("JOB_STATE_").lower()  # type: ignore[arg-type]


def state_value(name: str) -> jpb.JobState.ValueType:
    return jpb.JobState.Value("JOB_STATE_" + name.upper())


def _time(stamp: Timestamp, present: bool) -> str | None:
    """ISO 8601 in UTC, or None for a time that has not happened."""
    if not present:
        return None
    return stamp.ToDatetime().replace(microsecond=0).isoformat() + "Z"


def _times(job: jpb.Job) -> dict[str, str | None]:
    return {
        "submit_time": _time(job.submit_time, job.HasField("submit_time")),
        "start_time": _time(job.start_time, job.HasField("start_time")),
        "end_time": _time(job.end_time, job.HasField("end_time")),
        "expire_time": _time(job.expire_time, job.HasField("expire_time")),
    }


def labels_text(job: jpb.Job) -> str:
    return ", ".join(f"{label.key}={label.value}" for label in job.labels)


def progress_text(job: jpb.Job) -> str:
    """Where the job stands, in a few words: `queued (position 2)`, `transcribing 42 %`."""
    state = state_name(job.state)
    if job.state == jpb.JOB_STATE_QUEUED:
        return f"queued (position {job.queue_position})" if job.queue_position else state
    if job.state == jpb.JOB_STATE_RUNNING:
        stage = STAGES.get(job.stage, "starting")
        return f"{stage} {job.progress.overall_percent:.0f} %"
    if job.state == jpb.JOB_STATE_FAILED:
        return f"failed ({job.error.code})" if job.error.code else state
    return state


def job_to_dict(job: jpb.Job) -> dict[str, Any]:
    """A job for `whospoke jobs --format json`: everything but the result."""
    return {
        "job_id": job.job_id,
        "state": state_name(job.state),
        **_times(job),
        "queue_position": job.queue_position,
        "stage": STAGES.get(job.stage),
        "progress": {
            "overall_percent": round(job.progress.overall_percent, 1),
            "decoding_percent": round(job.progress.decoding_percent, 1),
            "transcription_percent": round(job.progress.transcription_percent, 1),
            "diarization_percent": round(job.progress.diarization_percent, 1),
            "segment_count": job.progress.segment_count,
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
        "webhook_url": job.webhook_url or None,
        "webhook_delivery": DELIVERY.get(job.webhook_delivery),
        "webhook_attempts": [
            {
                "number": a.number,
                "time": _time(a.time, a.HasField("time")),
                "http_status": a.http_status or None,
                "error": a.error or None,
                "duration_seconds": round(a.duration_seconds, 3),
            }
            for a in job.webhook_attempts
        ],
        "idempotency_key": job.idempotency_key or None,
    }


def summary_lines(job: jpb.Job) -> list[str]:
    """`whospoke job ID`: one `name  value` line per fact that is known."""
    times = _times(job)
    rows: list[tuple[str, str | None]] = [
        ("job", job.job_id),
        ("state", progress_text(job)),
        ("file", f"{job.filename or '(unnamed)'} ({_size(job.audio_bytes)})"),
        ("submitted", times["submit_time"]),
        ("started", times["start_time"]),
        ("ended", times["end_time"]),
        ("expires", times["expire_time"]),
        ("queued for", f"{job.timings.queue_seconds:.1f} s"),
        (
            "processing",
            f"{job.timings.processing_seconds:.1f} s" if job.start_time.seconds else None,
        ),
        ("attempts", f"{job.attempts} (replica {job.replica})" if job.replica else None),
        ("labels", labels_text(job) or None),
        ("idempotency", job.idempotency_key or None),
        ("error", f"{job.error.code}: {one_line(job.error.message)}" if job.error.code else None),
        ("webhook", _webhook(job)),
    ]
    lines = [f"{name:<12}{value}" for name, value in rows if value]
    for a in job.webhook_attempts:
        answer = f"HTTP {a.http_status}" if a.http_status else "no answer"
        why = f": {a.error}" if a.error else ""
        when = _time(a.time, a.HasField("time")) or ""
        lines.append(
            f"{'':<12}attempt {a.number} {when} {answer} in {a.duration_seconds:.2f} s{why}"
        )
    return lines


def _webhook(job: jpb.Job) -> str | None:
    if not job.webhook_url:
        return None
    delivery = DELIVERY.get(job.webhook_delivery, "pending")
    tries = len(job.webhook_attempts)
    return f"{job.webhook_url} {delivery} ({tries} attempt{'s' if tries != 1 else ''})"


def _size(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def jobs_table(jobs: list[jpb.Job]) -> Table:
    """`whospoke jobs`: newest first; ids in full, since they are what the other commands take."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    width = max((len(job.job_id) for job in jobs), default=2)
    table.add_column("ID", no_wrap=True, min_width=width)
    table.add_column("STATE", no_wrap=True)
    table.add_column("SUBMITTED", no_wrap=True)
    table.add_column("FILE", overflow="fold")
    table.add_column("LABELS", overflow="fold")
    for job in jobs:
        submitted = _time(job.submit_time, job.HasField("submit_time")) or ""
        table.add_row(
            job.job_id,
            progress_text(job),
            submitted.replace("T", " ").removesuffix("Z"),
            job.filename,
            labels_text(job),
        )
    return table


def job_failure(job: jpb.Job, server: str) -> CliError:
    """A failed job in the words its `Process` call would have ended with (exit 1)."""
    return status_error(job.error.code or "UNKNOWN", job.error.message, server)


def not_finished(job: jpb.Job) -> CliError:
    """A result asked of a job that has none: cancelled, or not ended yet (exit 1)."""
    if job.state == jpb.JOB_STATE_CANCELLED:
        return CliError(f"job {job.job_id} was cancelled", "It has no result.")
    return CliError(
        f"job {job.job_id} has no result yet: it is {progress_text(job)}",
        f"Pass --wait to wait for it (`whospoke job {job.job_id} --wait`).",
    )
