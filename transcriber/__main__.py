"""`whospoke-transcriber`: run the transcriber service until SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc

from whospoke.common.limiter import Limiter
from whospoke.common.metrics import Metrics
from whospoke.common.server import ServiceSpec, configure_logging, serve
from whospoke.v1 import transcriber_pb2, transcriber_pb2_grpc
from transcriber.config import TranscriberConfig, load_config
from transcriber.domain import TranscriptionEngine
from transcriber.engine import FasterWhisperEngine
from transcriber.server import TranscriberServicer

SERVICE_NAME = transcriber_pb2.DESCRIPTOR.services_by_name["Transcriber"].full_name


def build_spec(
    config: TranscriberConfig, engine: TranscriptionEngine, metrics: Metrics
) -> ServiceSpec:
    """Wire an engine into a servicer; tests pass a fake engine here."""
    limiter = Limiter(
        config.max_concurrent_streams, config.max_queued_streams, on_change=metrics.set_load
    )
    servicer = TranscriberServicer(
        engine,
        limiter,
        metrics,
        model_name=config.model.model,
        default_beam_size=config.model.default_beam_size,
        max_buffer_seconds=config.max_buffer_seconds,
    )

    def register(server: grpc.aio.Server) -> None:
        transcriber_pb2_grpc.add_TranscriberServicer_to_server(servicer, server)

    return ServiceSpec("transcriber", [SERVICE_NAME], register, engine.load)


def main(argv: Sequence[str] | None = None) -> None:
    config = load_config(argv)
    configure_logging(config.server.log_level)
    metrics = Metrics("transcriber")
    engine = FasterWhisperEngine(config.model, workers=config.max_concurrent_streams)
    asyncio.run(serve(config.server, build_spec(config, engine, metrics), metrics))


if __name__ == "__main__":
    main()
