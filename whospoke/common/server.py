"""The bootstrap every service shares: one gRPC server, health, reflection,
metrics, TLS, model loading off the loop, and graceful shutdown on SIGTERM.

Health reports NOT_SERVING until the model is loaded and again once shutdown
starts, so load balancers and orchestrators route around the process in both
windows.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from whospoke.common import tracing
from whospoke.common.auth import AuthInterceptor
from whospoke.common.config import ServerConfig
from whospoke.common.interceptor import ServiceInterceptor
from whospoke.common.metrics import Metrics
from whospoke.common.priority import set_niceness

logger = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Background(Protocol):
    """Work a service does besides answering calls (the orchestrator's job queue)."""

    async def start(self) -> None:
        """Begin, once loading has succeeded; returns at once."""
        ...

    async def stop(self, grace: float) -> None:
        """End within about `grace` seconds, leaving nothing half-done that cannot resume."""
        ...


@dataclass(frozen=True)
class ServiceSpec:
    """What a service adds to the shared server."""

    name: str
    """Short name used in logs and metric labels ("transcriber")."""
    full_names: Sequence[str]
    """Fully qualified gRPC service names, for health and reflection."""
    register: Callable[[grpc.aio.Server], None]
    """Adds the servicers to the server."""
    load: Callable[[], None]
    """Loads the model(s); blocking, so it runs in a worker thread."""
    background: Background | None = None
    """Started after `load`, stopped with the server."""


class RunningServer:
    """A started server: its port, health state and shutdown."""

    def __init__(
        self, server: grpc.aio.Server, port: int, spec: ServiceSpec, metrics: Metrics
    ) -> None:
        self.server = server
        self.port = port
        self.spec = spec
        self.metrics = metrics
        self.health = health.aio.HealthServicer()
        self._background_started = False
        self._stopping = False

    async def set_serving(self, serving: bool) -> None:
        status = SERVING if serving else NOT_SERVING
        for name in ("", *self.spec.full_names):
            await self.health.set(name, status)

    async def load(self) -> None:
        """Load the model(s) in a thread, then report SERVING."""
        start = time.perf_counter()
        await asyncio.to_thread(self.spec.load)
        elapsed = time.perf_counter() - start
        self.metrics.model_load_seconds.labels(self.spec.name).set(elapsed)
        logger.info("%s: model loaded in %.1f s; serving", self.spec.name, elapsed)
        if self.spec.background is not None and not self._stopping:
            await self.spec.background.start()
            self._background_started = True
        await self.set_serving(True)

    async def stop(self, grace: float) -> None:
        """NOT_SERVING first, then let in-flight calls and background work finish within
        `grace` seconds (both at once)."""
        self._stopping = True  # a load still running must not start the background now
        await self.health.enter_graceful_shutdown()
        background = self.spec.background
        if background is not None and self._background_started:
            await asyncio.gather(self.server.stop(grace), background.stop(grace))
        else:
            await self.server.stop(grace)


async def start_server(config: ServerConfig, spec: ServiceSpec, metrics: Metrics) -> RunningServer:
    """Create, bind and start the server; health is NOT_SERVING until `load()`."""
    options = server_options(config)
    interceptors = tracing.server_interceptors()  # first: its span covers auth and errors
    if config.auth_tokens:
        interceptors.append(AuthInterceptor(config.auth_tokens, config.auth_health))
    interceptors.append(ServiceInterceptor(metrics))
    server = grpc.aio.server(interceptors=interceptors, options=options)
    spec.register(server)
    credentials = _credentials(config)
    if credentials is None:
        port = server.add_insecure_port(config.address)
    else:
        port = server.add_secure_port(config.address, credentials)
    if port == 0:
        raise OSError(f"{spec.name}: cannot listen on {config.address}")
    running = RunningServer(server, port, spec, metrics)
    health_pb2_grpc.add_HealthServicer_to_server(running.health, server)
    reflection.enable_server_reflection(
        [*spec.full_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    await running.set_serving(False)
    await server.start()
    logger.info("%s: listening on %s:%d", spec.name, config.host, port)
    return running


def server_options(config: ServerConfig) -> list[tuple[str, int]]:
    """The gRPC channel arguments of the server; a connection age of 0 leaves gRPC's default
    (no limit), as does a grace of 0 (calls in flight are never cut)."""
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    if config.max_connection_age_seconds > 0:
        options.append(("grpc.max_connection_age_ms", _ms(config.max_connection_age_seconds)))
    if config.max_connection_age_grace_seconds > 0:
        grace = _ms(config.max_connection_age_grace_seconds)
        options.append(("grpc.max_connection_age_grace_ms", grace))
    return options


def _ms(seconds: float) -> int:
    """Seconds as gRPC's whole milliseconds, at least 1 and at most its int32 limit."""
    return max(1, min(round(seconds * 1000), 2**31 - 1))


def _credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    if not config.tls_cert:
        return None
    key = Path(config.tls_key).read_bytes()
    cert = Path(config.tls_cert).read_bytes()
    ca = Path(config.tls_client_ca).read_bytes() if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def serve(config: ServerConfig, spec: ServiceSpec, metrics: Metrics) -> None:
    """Run a service until SIGTERM or SIGINT, then shut down gracefully."""
    set_niceness(config.nice)  # before the models load and start their threads
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics.serve_http(config.host, config.metrics_port)
    tracing.setup(spec.name)
    running = await start_server(config, spec, metrics)
    loader = asyncio.create_task(running.load())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({loader, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if loader in done and loader.exception() is not None:
        logger.error("%s: loading failed: %s", spec.name, loader.exception())
        await running.stop(0)
        raise SystemExit(1)
    await stopper
    logger.info("%s: shutting down (grace %.0f s)", spec.name, config.grace_seconds)
    await running.stop(config.grace_seconds)
    loader.cancel()
    logger.info("%s: stopped", spec.name)
