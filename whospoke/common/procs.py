"""Running whospoke services as subprocesses on loopback: for the demo, the
end-to-end tests, the benchmarks and `whospoke serve`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

MODULES = {"transcriber": "transcriber", "diarizer": "diarizer", "orchestrator": "orchestrator"}


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """A service started with `python -m <service>`, its port and its log."""

    name: str
    port: int
    metrics_port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls, name: str, args: Sequence[str], port: int = 0, metrics_port: int = 0
    ) -> ServiceProcess:
        port = port or free_port()
        fd, log_name = tempfile.mkstemp(prefix=f"whospoke-{name}-", suffix=".log")
        command = [
            sys.executable,
            "-m",
            MODULES[name],
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            *args,
        ]
        env = {**os.environ, "PYANNOTE_METRICS_ENABLED": "false"}
        with os.fdopen(fd, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        return cls(name, port, metrics_port, process, Path(log_name))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.address)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_serving(self, within: float) -> None:
        """Poll the standard health service until SERVING, or raise with the log."""
        deadline = time.monotonic() + within
        async with self.channel() as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} not SERVING after {within} s:\n{self.log()}")

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
