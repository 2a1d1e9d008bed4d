"""A transcriber or diarizer process with a fake engine, for replica tests.

`python -m tests.fake_backend transcriber|diarizer --port P --metrics-port M [--pace S]`
serves the real servicer and bootstrap (health, metrics, graceful shutdown) over
the fake engine of `tests.fakes`; the transcriber takes `--pace` seconds per
second of audio, so a test can kill a replica while its calls are in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections.abc import Sequence

from diarizer.config import DiarizerConfig
from diarizer.engine import DiarizerModelConfig
from diarizer.server import build_spec as diarizer_spec
from tests.fakes import FakeDiarizationEngine, FakeTranscriptionEngine
from transcriber.config import ModelConfig, TranscriberConfig
from transcriber.server import build_spec as transcriber_spec
from whospoke.common.config import ServerConfig
from whospoke.common.metrics import Metrics
from whospoke.common.server import ServiceSpec, serve


class Pace(threading.Event):
    """A gate for the fake session that opens after `seconds` each time it is waited on."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self._seconds = seconds

    def wait(self, timeout: float | None = None) -> bool:
        time.sleep(self._seconds)
        return True


def spec(kind: str, server: ServerConfig, pace: float, metrics: Metrics) -> ServiceSpec:
    if kind == "transcriber":
        config = TranscriberConfig(
            server=server, model=ModelConfig(model="fake"), max_concurrent_streams=8
        )
        engine = FakeTranscriptionEngine(gate=Pace(pace) if pace else None)
        return transcriber_spec(config, engine, metrics)
    d_config = DiarizerConfig(server=server, model=DiarizerModelConfig(), max_concurrent_streams=8)
    return diarizer_spec(d_config, FakeDiarizationEngine(), metrics)


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="fake_backend")
    parser.add_argument("kind", choices=["transcriber", "diarizer"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--pace", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = ServerConfig(
        host=args.host, port=args.port, metrics_port=args.metrics_port, grace_seconds=1
    )
    metrics = Metrics(args.kind)
    asyncio.run(serve(server, spec(args.kind, server, args.pace, metrics), metrics))


if __name__ == "__main__":
    main(sys.argv[1:])
