"""`whospoke-diarizer`: run the diarizer service until SIGTERM."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")

from diarizer.config import load_config
from diarizer.engine import PyannoteEngine
from diarizer.server import build_spec
from whospoke.common.metrics import Metrics
from whospoke.common.server import configure_logging, serve


def main(argv: Sequence[str] | None = None) -> None:
    config = load_config(argv)
    configure_logging(config.server.log_level)
    metrics = Metrics("diarizer")
    engine = PyannoteEngine(config.model)
    asyncio.run(serve(config.server, build_spec(config, engine, metrics), metrics))


if __name__ == "__main__":
    main()
