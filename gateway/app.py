"""The FastAPI application: routes, error shapes, body limit, metrics and CORS.

`create_app` takes its orchestrator client (`Upstream`) from outside so tests can point
it at an in-process orchestrator; `whospoke-gateway` builds one from its flags.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gateway import dashboard, errors, jobs, models, ops, realtime, transcriptions
from gateway.config import GatewayConfig
from gateway.httpmetrics import HttpMetrics, MetricsMiddleware
from gateway.limits import BodyLimit
from gateway.state import Gateway
from gateway.upstream import Upstream

DESCRIPTION = """\
whospoke over HTTP: OpenAI-compatible transcription and translation (speakers included,
with `response_format=diarized_json`), durable jobs, health, status and a dashboard.
Send `Authorization: Bearer <token>` when the services check tokens.
"""


def create_app(config: GatewayConfig, upstream: Upstream | None = None) -> FastAPI:
    upstream = upstream or Upstream(config)
    metrics = HttpMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await upstream.open()
        try:
            yield
        finally:
            await upstream.close(config.grace_seconds)

    app = FastAPI(title="whospoke", description=DESCRIPTION, version="1", lifespan=lifespan)
    app.state.gateway = Gateway(config, upstream, metrics)
    errors.install(app)
    app.include_router(transcriptions.router)
    app.include_router(models.router)
    app.include_router(jobs.router)
    app.include_router(ops.router)
    app.include_router(dashboard.router)
    app.include_router(realtime.router)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
            expose_headers=["Location", "Retry-After"],
        )
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
