"""`whospoke-orchestrator`: run the orchestrator service until SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import grpc

from orchestrator.backends import BackendSettings, GrpcDiarizer, GrpcTranscriber
from orchestrator.config import OrchestratorConfig, load_config
from orchestrator.pools import Pool, TranscriberPools
from orchestrator.server import build_spec
from whospoke.common import tracing
from whospoke.common.metrics import Metrics
from whospoke.common.server import configure_logging, serve


def backend_settings(config: OrchestratorConfig, target: str) -> BackendSettings:
    b = config.backends
    return BackendSettings(
        target,
        deadline_seconds=b.deadline_seconds,
        deadline_per_audio_second=b.deadline_per_audio_second,
        max_message_bytes=config.server.max_message_bytes,
        credentials=backend_credentials(config),
        server_name=b.tls_server_name,
    )


def backend_credentials(config: OrchestratorConfig) -> grpc.ChannelCredentials | None:
    b = config.backends
    if not b.tls_ca:
        return None
    key = Path(b.tls_key).read_bytes() if b.tls_key else None
    cert = Path(b.tls_cert).read_bytes() if b.tls_cert else None
    return grpc.ssl_channel_credentials(Path(b.tls_ca).read_bytes(), key, cert)


def transcriber_pools(config: OrchestratorConfig) -> tuple[TranscriberPools, list[GrpcTranscriber]]:
    """A client per configured pool, and the pools over them."""
    clients = [
        GrpcTranscriber(backend_settings(config, pool.target))
        for pool in config.backends.transcribers
    ]
    pools = [
        Pool(pool.model, client)
        for pool, client in zip(config.backends.transcribers, clients, strict=True)
    ]
    return TranscriberPools(pools), clients


async def run(config: OrchestratorConfig) -> None:
    tracing.setup("orchestrator")  # before the backend channels open: they trace their calls
    pools, clients = transcriber_pools(config)
    diarizer = GrpcDiarizer(backend_settings(config, config.backends.diarizer))
    metrics = Metrics("orchestrator")
    try:
        await serve(config.server, build_spec(config, pools, diarizer, metrics), metrics)
    finally:
        await asyncio.gather(*(client.close() for client in clients), diarizer.close())


def main(argv: Sequence[str] | None = None) -> None:
    config = load_config(argv)
    configure_logging(config.server.log_level)
    asyncio.run(run(config))


if __name__ == "__main__":
    main()
