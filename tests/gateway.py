"""A real gateway (uvicorn on a socket) in front of an in-process orchestrator, for tests.

Tests reach it over HTTP like any client: the official `openai` SDK, httpx, a browser.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from gateway.config import GatewayConfig, UpstreamConfig
from gateway.state import Gateway


@dataclass
class GatewayServer:
    url: str
    app: FastAPI

    @property
    def state(self) -> Gateway:
        state: Gateway = self.app.state.gateway
        return state


@asynccontextmanager
async def gateway_server(orchestrator_port: int, **settings: Any) -> AsyncIterator[GatewayServer]:
    """The gateway on a free port of 127.0.0.1, pointed at the orchestrator's port."""
    upstream = UpstreamConfig(address=f"127.0.0.1:{orchestrator_port}")
    if "upstream" in settings:
        upstream = dataclasses.replace(upstream, **settings.pop("upstream"))
    config = GatewayConfig(port=0, upstream=upstream, **settings)
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield GatewayServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        await task
