"""Operations: `/health` for load balancers, `/status` for the dashboard, `/metrics` for
Prometheus.

`/health` asks the orchestrator's gRPC health service (open even when tokens are checked)
and, for the backends, its `GetStatus`. `/status` adds the work in progress: the gateway's
own `Process` calls and the durable jobs. Job contents (texts, file names, callback URLs,
labels) go only to a caller whose own token the orchestrator accepts; anyone else gets the
view the gateway's own token opens, with the contents taken out (`status.redact`), or
without a gateway token only the health part.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from grpc_health.v1 import health_pb2
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import status as shapes
from gateway.errors import ApiError
from gateway.state import Memory, gateway, metadata
from gateway.upstream import Metadata, Upstream
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import orchestrator_pb2 as pb

router = APIRouter(tags=["operations"])

HEALTH_DEADLINE_SECONDS = 2.0
STARTUP_GRACE_SECONDS = 120.0
"""An orchestrator the gateway has never reached counts as starting for this long after the
gateway started (services start in any order), then as an error (a wrong address)."""
JOBS_PAGE = 100
DURATION_LOOKUPS = 16
"""`GetJob` calls per `/status` for the audio durations of newly finished jobs (`ListJobs`
leaves results out); the answers are kept, so the dashboard catches up within a few polls."""
DURATIONS_KEPT = 4096
DENIED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
NOT_SERVING = "NOT_SERVING"


@dataclass
class Upstate:
    """The orchestrator as this caller may see it."""

    view: str
    """"full" (the caller's token works, or none is needed), "redacted" (the gateway's own
    token works, or the orchestrator cannot say), "health" (nothing more to show)."""
    metadata: Metadata
    status: pb.OrchestratorStatus | None
    detail: str = ""


def _caller(request: Request) -> Metadata:
    """The caller's credentials; an unusable header counts as none (health stays open)."""
    try:
        return metadata(request)
    except ApiError:
        return ()


async def _check(upstream: Upstream, meta: Metadata) -> dict[str, Any]:
    """The orchestrator's own health, from the standard gRPC health service."""
    address = upstream.config.upstream.address
    try:
        response = await upstream.health.Check(
            health_pb2.HealthCheckRequest(service=""),
            metadata=meta,
            timeout=min(upstream.timeout, HEALTH_DEADLINE_SECONDS),
        )
    except grpc.aio.AioRpcError as error:
        unreachable = error.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
        detail = f"{error.code().name}: {error.details()}"
        return {
            "address": address,
            "serving": False,
            "reachable": not unreachable,
            "detail": detail,
        }
    serving = response.status == health_pb2.HealthCheckResponse.SERVING
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return {
        "address": address,
        "serving": serving,
        "reachable": True,
        "detail": "" if serving else name,
    }


async def _authorised(upstream: Upstream, caller: Metadata) -> Upstate:
    """`GetStatus` with the caller's credentials, else with the gateway's own."""
    own = upstream.own_metadata
    tries = [("full", caller)] + ([("redacted", own)] if own and own != caller else [])
    detail = ""
    for view, meta in tries:
        try:
            return Upstate(view, meta, await upstream.status(meta))
        except grpc.aio.AioRpcError as error:
            detail = f"{error.code().name}: {error.details()}"
            if error.code() not in DENIED:
                break
    return Upstate("redacted" if own else "health", own, None, detail)


def health_body(
    memory: Memory, started: float, check: dict[str, Any], up: Upstate
) -> dict[str, Any]:
    """The `/health` body: "ready", "starting" or "error", and every service's part in it."""
    backends = list(up.status.backends) if up.status is not None else []
    reachable = check["reachable"] or up.status is not None
    memory.serving.update(b.name for b in backends if b.serving)
    items = [shapes.backend_item(b, _backend_state(memory, b)) for b in backends]
    if not reachable:
        fresh = not memory.reached and time.time() - started < STARTUP_GRACE_SECONDS
        orchestrator = "starting" if fresh else "down"
    elif check["serving"]:
        orchestrator = "serving"
    else:
        orchestrator = "starting" if check["detail"] == NOT_SERVING else "down"
    memory.reached = memory.reached or reachable
    states = {orchestrator, *(b["state"] for b in items)}
    overall = "error" if "down" in states else "starting" if "starting" in states else "ready"
    return {
        "status": overall,
        "orchestrator": {**check, "reachable": reachable, "state": orchestrator},
        "backends": items,
    }


def _backend_state(memory: Memory, backend: pb.BackendStatus) -> str:
    if backend.serving:
        return "serving"
    loading = backend.detail == NOT_SERVING and backend.name not in memory.serving
    return "starting" if loading else "down"


async def _probe(request: Request) -> tuple[dict[str, Any], Upstate]:
    state = gateway(request)
    caller = _caller(request)
    check, up = await asyncio.gather(
        _check(state.upstream, state.upstream.own_metadata or caller),
        _authorised(state.upstream, caller),
    )
    return health_body(gateway(request).memory, state.started, check, up), up


@router.get(
    "/health",
    summary="Health of the gateway, the orchestrator and its backends",
    responses={503: {"description": "Starting, or something is down (same body)."}},
)
async def health(request: Request) -> JSONResponse:
    body, _ = await _probe(request)
    return JSONResponse(body, status_code=200 if body["status"] == "ready" else 503)


@router.get("/status", summary="Work running and queued, recent work, throughput, backends")
async def status(request: Request) -> dict[str, Any]:
    state = gateway(request)
    body, up = await _probe(request)
    now = time.time()
    view: dict[str, Any] = {
        "view": up.view,
        "time": now,
        "health": body,
        "orchestrator": None,
        "detail": up.detail,
        "running": [],
        "queued": [],
        "recent": [],
        "throughput": None,
    }
    if up.view == "health":
        return view
    jobs: list[shapes.Item] = []
    if up.status is not None:
        view["orchestrator"] = shapes.orchestrator_item(up.status)
        jobs, why = await _jobs(state.upstream, up.metadata, gateway(request).memory)
        view["detail"] = why
    state.activity.prune(now)
    mine = [*state.activity.running.values(), *state.activity.recent]
    view.update(shapes.work([*(shapes.request_item(r) for r in mine), *jobs], now))
    return view if up.view == "full" else shapes.redact(view)


async def _jobs(
    upstream: Upstream, meta: Metadata, memory: Memory
) -> tuple[list[shapes.Item], str]:
    """Queued, running and recently submitted durable jobs; why not, when the list failed."""
    kinds = (jpb.JOB_STATE_QUEUED, jpb.JOB_STATE_RUNNING, jpb.JOB_STATE_UNSPECIFIED)
    try:
        pages = await asyncio.gather(
            *(
                upstream.jobs.ListJobs(
                    jpb.ListJobsRequest(state=kind, page_size=JOBS_PAGE),
                    metadata=meta,
                    timeout=upstream.timeout,
                )
                for kind in kinds
            )
        )
    except grpc.aio.AioRpcError as error:
        return [], f"jobs: {error.code().name}: {error.details()}"
    found: dict[str, jpb.Job] = {}
    for page in reversed(pages):  # the state's own lists are the freshest
        found.update((job.job_id, job) for job in page.jobs)
    await _durations(upstream, meta, memory, found.values())
    return [shapes.job_item(j, memory.durations.get(j.job_id)) for j in found.values()], ""


async def _durations(
    upstream: Upstream, meta: Metadata, memory: Memory, jobs: Iterable[jpb.Job]
) -> None:
    """Learn the audio durations of jobs that succeeded in the last hour (from `GetJob`)."""
    cutoff = time.time() - shapes.HOUR
    wanted = [
        j.job_id
        for j in jobs
        if j.state == jpb.JOB_STATE_SUCCEEDED
        and j.end_time.seconds >= cutoff
        and j.job_id not in memory.durations
    ][:DURATION_LOOKUPS]

    async def learn(job_id: str) -> None:
        with suppress(grpc.aio.AioRpcError):
            job: jpb.Job = await upstream.jobs.GetJob(
                jpb.GetJobRequest(job_id=job_id), metadata=meta, timeout=upstream.timeout
            )
            memory.durations[job_id] = job.result.audio_duration_seconds

    await asyncio.gather(*(learn(job_id) for job_id in wanted))
    while len(memory.durations) > DURATIONS_KEPT:
        memory.durations.popitem(last=False)


@router.get("/metrics", summary="Prometheus metrics of the gateway", response_class=Response)
async def metrics(request: Request) -> Response:
    registry = gateway(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
