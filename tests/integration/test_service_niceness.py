"""A service started with `--nice` runs every thread at that niceness, the gRPC server's
included (here the orchestrator: it starts in a second, without models)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from whospoke.common.procs import ServiceProcess, free_port


def thread_niceness(pid: int) -> list[int]:
    """Field 19 of each thread's stat, counted after the command name's closing parenthesis."""
    values = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        values.append(int(stat.rsplit(")", 1)[1].split()[16]))
    return values


async def answering(service: ServiceProcess) -> None:
    """Until its health service answers at all (NOT_SERVING while its backends are absent)."""
    async with service.channel() as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            service.check_alive()
            try:
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                return
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)


async def test_every_thread_of_a_service_runs_at_its_niceness(tmp_path: Path) -> None:
    absent = f"127.0.0.1:{free_port()}"
    flags = ["--transcriber", absent, "--diarizer", absent, "--data-dir", str(tmp_path)]
    service = ServiceProcess.start("orchestrator", [*flags, "--nice", "6"])
    try:
        await asyncio.wait_for(answering(service), 60)
        values = thread_niceness(service.process.pid)
    finally:
        service.stop()
    assert len(values) > 1
    assert set(values) == {max(os.getpriority(os.PRIO_PROCESS, 0), 6)}
