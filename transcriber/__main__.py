"""`whospoke-transcriber`: run the transcriber service until SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from transcriber.config import load_config
from transcriber.engine import FasterWhisperEngine
from transcriber.server import build_spec
from whospoke.common.metrics import Metrics
from whospoke.common.server import configure_logging, serve


def main(argv: Sequence[str] | None = None) -> None:
    config = load_config(argv)
    configure_logging(config.server.log_level)
    metrics = Metrics("transcriber")
    engine = FasterWhisperEngine(config.model, workers=config.max_concurrent_streams)
    asyncio.run(serve(config.server, build_spec(config, engine, metrics), metrics))


if __name__ == "__main__":
    main()
