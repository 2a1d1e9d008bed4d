"""`whospoke-orchestrator`: run the orchestrator service until SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from orchestrator.backends import BackendSettings, GrpcDiarizer, GrpcTranscriber
from orchestrator.config import OrchestratorConfig, load_config
from orchestrator.server import build_spec
from whospoke.common.metrics import Metrics
from whospoke.common.server import configure_logging, serve


async def run(config: OrchestratorConfig) -> None:
    b = config.backends
    common = {
        "deadline_seconds": b.deadline_seconds,
        "deadline_per_audio_second": b.deadline_per_audio_second,
        "max_message_bytes": config.server.max_message_bytes,
    }
    transcriber = GrpcTranscriber(BackendSettings(b.transcriber, **common))  # type: ignore[arg-type]
    diarizer = GrpcDiarizer(BackendSettings(b.diarizer, **common))  # type: ignore[arg-type]
    metrics = Metrics("orchestrator")
    try:
        await serve(config.server, build_spec(config, transcriber, diarizer, metrics), metrics)
    finally:
        await transcriber.close()
        await diarizer.close()


def main(argv: Sequence[str] | None = None) -> None:
    config = load_config(argv)
    configure_logging(config.server.log_level)
    asyncio.run(run(config))


if __name__ == "__main__":
    main()
