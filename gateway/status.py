"""The shapes of `/health` and `/status`: plain dicts built from the orchestrator's messages
and the gateway's own requests, and the one function that hides job contents.

Kept free of I/O so the shapes and, above all, the redaction are tested without servers:
whatever `/status` shows an anonymous caller goes through `redact`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from gateway.activity import Request
from whospoke.v1 import audio_pb2
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import orchestrator_pb2 as pb

HOUR = 3600.0
BUCKET_SECONDS = 60.0
BUCKETS = 60
RECENT_SHOWN = 50
LINES_SHOWN = 50
PRIVATE = ("filename", "lines", "error", "labels", "webhook_url")
"""What a work item says about its contents (texts, names, callback URLs, tags): only for
callers whose own token the orchestrator accepts."""

Item = dict[str, Any]


def _stage(stage: pb.Stage.ValueType) -> str:
    name: str = pb.Stage.Name(stage)
    return "" if stage == pb.STAGE_UNSPECIFIED else name.removeprefix("STAGE_").lower()


def _seconds(job: jpb.Job, name: Literal["submit_time", "start_time", "end_time"]) -> float | None:
    if not job.HasField(name):
        return None
    stamp = getattr(job, name)
    return float(stamp.seconds + stamp.nanos / 1e9)


def _factor(processing: float, audio: float) -> float | None:
    return round(processing / audio, 3) if processing > 0 and audio > 0 else None


def request_item(request: Request) -> Item:
    """One of the gateway's own `Process` calls."""
    processing = request.processing_seconds if request.started else 0.0
    lines = [{"speaker": who, "text": text} for who, text in request.lines[-LINES_SHOWN:]]
    return {
        "id": request.id,
        "source": "gateway",
        "kind": request.kind,
        "state": request.state,
        "stage": request.stage,
        "queue_position": request.queue_position,
        "percent": round(request.percent, 1),
        "segments": request.segments,
        "diarize": request.diarize,
        "size_bytes": request.size_bytes,
        "audio_seconds": round(request.audio_seconds, 3),
        "created": request.created,
        "started": request.started or None,
        "finished": request.finished or None,
        "processing_seconds": round(processing, 3),
        "real_time_factor": _factor(processing, request.audio_seconds)
        if request.finished
        else None,
        "error_code": "",
        "filename": request.filename,
        "error": request.error,
        "lines": lines,
        "labels": {},
        "webhook_url": "",
    }


def job_item(job: jpb.Job, audio_seconds: float | None = None) -> Item:
    """One durable job, as `ListJobs` has it (`audio_seconds` from its result, when known)."""
    state: str = jpb.JobState.Name(job.state)
    processing = job.timings.processing_seconds
    audio = audio_seconds or 0.0
    ended = _seconds(job, "end_time")
    return {
        "id": job.job_id,
        "source": "job",
        "kind": "job",
        "state": state.removeprefix("JOB_STATE_").lower(),
        "stage": _stage(job.stage),
        "queue_position": job.queue_position,
        "percent": round(job.progress.overall_percent, 1),
        "segments": job.progress.segment_count,
        "diarize": not job.options.skip_diarization,
        "size_bytes": job.audio_bytes,
        "audio_seconds": round(audio, 3),
        "created": _seconds(job, "submit_time"),
        "started": _seconds(job, "start_time"),
        "finished": ended,
        "processing_seconds": round(processing, 3),
        "real_time_factor": _factor(processing, audio) if ended else None,
        "error_code": job.error.code,
        "filename": job.filename,
        "error": job.error.message,
        "lines": [],
        "labels": {label.key: label.value for label in job.labels},
        "webhook_url": job.webhook_url,
    }


def gpu_item(gpu: audio_pb2.DeviceStats) -> Item:
    return {
        "index": gpu.gpu_index,
        "name": gpu.gpu_name,
        "utilization_percent": round(gpu.utilization_percent_avg, 1),
        "memory_used_bytes": gpu.memory_used_bytes_avg,
        "memory_total_bytes": gpu.memory_total_bytes,
    }


def backend_item(backend: pb.BackendStatus, state: str) -> Item:
    """A backend's health and what it runs; `state` is serving, starting or down."""
    return {
        "name": backend.name,
        "address": backend.address,
        "serving": backend.serving,
        "state": state,
        "detail": backend.detail,
        "models": list(backend.models),
        "device": backend.device,
        "gpu": gpu_item(backend.gpu) if backend.HasField("gpu") else None,
    }


def orchestrator_item(status: pb.OrchestratorStatus) -> Item:
    """The orchestrator's counts and limits (its `Process` calls and the durable queue)."""
    q = status.job_queue
    return {
        "jobs_running": status.jobs_running,
        "jobs_queued": status.jobs_queued,
        "max_concurrent_jobs": status.max_concurrent_jobs,
        "max_queued_jobs": status.max_queued_jobs,
        "max_upload_bytes": status.max_upload_bytes,
        "job_queue": {
            "queued": q.queued,
            "running": q.running,
            "succeeded": q.succeeded,
            "failed": q.failed,
            "cancelled": q.cancelled,
            "oldest_queued_seconds": round(q.oldest_queued_seconds, 3),
            "average_queue_seconds": round(q.average_queue_seconds, 3),
            "average_processing_seconds": round(q.average_processing_seconds, 3),
            "store": q.store,
            "running_here": q.running_here,
        },
    }


def throughput(finished: Iterable[Item], now: float) -> Item:
    """Seconds of audio processed per minute over the last hour, oldest minute first."""
    start = now - BUCKETS * BUCKET_SECONDS
    audio = [0.0] * BUCKETS
    counts = [0] * BUCKETS
    processing = 0.0
    for item in finished:
        end = item.get("finished")
        if item["state"] != "succeeded" or end is None or not start <= end <= now:
            continue
        index = min(BUCKETS - 1, int((end - start) // BUCKET_SECONDS))
        audio[index] += item["audio_seconds"]
        counts[index] += 1
        if item["audio_seconds"] > 0:
            processing += item["processing_seconds"]
    total = sum(audio)
    return {
        "bucket_seconds": BUCKET_SECONDS,
        "buckets": [
            {"start": start + i * BUCKET_SECONDS, "audio_seconds": round(a, 3), "count": c}
            for i, (a, c) in enumerate(zip(audio, counts, strict=True))
        ],
        "audio_seconds": round(total, 3),
        "finished": sum(counts),
        "real_time_factor": _factor(processing, total),
    }


def work(items: Iterable[Item], now: float) -> Item:
    """Running, queued and recently finished work (newest first), and the hour's throughput."""
    everything = list(items)
    running = sorted(
        (i for i in everything if i["state"] == "running"), key=lambda i: i["started"] or 0.0
    )
    queued = sorted(
        (i for i in everything if i["state"] == "queued"),
        key=lambda i: (i["queue_position"] or 1 << 30, i["created"] or 0.0),
    )
    finished = [i for i in everything if i["finished"] is not None and i["finished"] >= now - HOUR]
    finished.sort(key=lambda i: i["finished"], reverse=True)
    return {
        "running": running,
        "queued": queued,
        "recent": finished[:RECENT_SHOWN],
        "throughput": throughput(finished, now),
    }


def redact(status: Item) -> Item:
    """`status` as a caller without a valid token sees it: every work item without its
    contents (`PRIVATE`); ids, states, stages, percents, counts, durations and devices stay."""
    hidden = dict(status, view="redacted")
    for key in ("running", "queued", "recent"):
        hidden[key] = [
            {k: v for k, v in item.items() if k not in PRIVATE} for item in status.get(key, [])
        ]
    return hidden
