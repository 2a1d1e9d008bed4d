"""`whospoke serve`'s ports: checked before anything starts, and only its own processes count.

No models are loaded: the port checks run before any service starts, and the
start-up checks are exercised with stand-in child processes (and one real
orchestrator, which needs no model).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from whospoke.cli import serve
from whospoke.cli.main import run
from whospoke.common.procs import (
    ServiceFailed,
    ServiceProcess,
    command_line,
    describe_holder,
    free_port,
    listener_pids,
    owns_listener,
)


@contextmanager
def occupied(offset: int = 0) -> Iterator[tuple[int, socket.socket]]:
    """A base port whose base+`offset` this test process listens on."""
    for _ in range(50):
        base = free_port()
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", base + offset))
        except OSError:
            sock.close()
            continue
        sock.listen(1)
        with sock:
            yield base, sock
        return
    raise RuntimeError("no pair of free ports found")


def serve_line(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = run(["serve", *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.splitlines()


def test_a_taken_grpc_port_is_named_with_its_holder(capsys: pytest.CaptureFixture[str]) -> None:
    me = f"pid {os.getpid()} ("
    with occupied(0) as (base, _):
        code, lines = serve_line(capsys, "--base-port", str(base), "--metrics-base-port", "0")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(
        f"whospoke: error: the orchestrator's gRPC port: port {base} is in use by {me}"
    )
    assert lines[0].endswith("pick other ports with --base-port and --metrics-base-port.")
    with occupied(1) as (base, _):
        code, lines = serve_line(capsys, "--base-port", str(base), "--metrics-base-port", "0")
    assert (
        code == 2
        and f"the transcriber's gRPC port: port {base + 1} is in use by {me}" in (lines[0])
    )


def test_a_taken_metrics_port_and_clashing_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    with occupied(2) as (base, _):
        code, lines = serve_line(capsys, "--base-port", "0", "--metrics-base-port", str(base))
    assert code == 2 and len(lines) == 1
    assert (
        f"the diarizer's metrics port: port {base + 2} is in use by pid {os.getpid()}" in (lines[0])
    )
    code, lines = serve_line(capsys, "--base-port", "50060", "--port", "50061")
    assert code == 2
    assert lines == [
        "whospoke: error: the transcriber's gRPC port and the orchestrator's gRPC port are "
        "both 50061. Give each service its own port."
    ]


def test_the_owner_of_a_listening_port_is_found(tmp_path: Path) -> None:
    with occupied() as (port, _):
        assert listener_pids(port) == {os.getpid()}
        assert owns_listener(os.getpid(), port, "127.0.0.1") is True
        assert owns_listener(os.getpid(), port, "127.0.0.2") is False
        assert describe_holder(port).startswith(f"pid {os.getpid()} (")
    assert listener_pids(port) == set() and describe_holder(port) == "another process"


def stand_in(tmp_path: Path, name: str, code: str, port: int) -> ServiceProcess:
    """A child process standing in for a service (no model, no gRPC server of its own)."""
    log = tmp_path / f"{name}.log"
    with log.open("wb") as file:
        child = subprocess.Popen([sys.executable, "-c", code], stdout=file, stderr=file)
    return ServiceProcess(name, port, 0, child, log)


async def test_health_answered_by_another_process_is_not_accepted(tmp_path: Path) -> None:
    impostor = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), impostor)
    port = impostor.add_insecure_port("127.0.0.1:0")
    await impostor.start()
    child = stand_in(tmp_path, "transcriber", "import time; time.sleep(60)", port)
    try:
        with pytest.raises(ServiceFailed) as caught:
            await child.wait_serving(within=30)
    finally:
        child.stop()
        await impostor.stop(0)
    assert caught.value.summary == (
        f"port {port} answers health checks but is held by pid {os.getpid()} "
        f"({command_line(os.getpid())}), not by the transcriber started here "
        f"(pid {child.process.pid})"
    )


async def test_a_service_that_serves_on_its_own_port_is_accepted() -> None:
    service = ServiceProcess.start("orchestrator", [], free_port(), host="127.0.0.1")
    try:
        await service.wait_serving(within=60)
        assert owns_listener(service.process.pid, service.port, "127.0.0.1") is True
        assert listener_pids(service.port) == {service.process.pid}
    finally:
        assert service.stop() == 0


async def test_a_service_that_cannot_bind_is_reported_with_its_log(tmp_path: Path) -> None:
    with occupied() as (port, _):
        service = ServiceProcess.start("orchestrator", ["--metrics-port", "0"], port)
        try:
            with pytest.raises(ServiceFailed) as caught:
                await service.wait_serving(within=60)
        finally:
            service.stop()
    error = caught.value
    assert error.summary == f"the orchestrator (pid {service.process.pid}) exited with code 1"
    assert 0 < len(error.tail) <= 10
    assert f"Failed to bind to address 127.0.0.1:{port}" in error.tail[-1]
    assert error.log_path == service.log_path


def test_serve_reports_a_dying_service_in_one_line_and_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = "print('\\n'.join(f'line {i}' for i in range(15))); raise SystemExit(3)"
    started: list[ServiceProcess] = []

    def start_all(*_: object) -> list[ServiceProcess]:
        started.append(stand_in(tmp_path, "diarizer", script, free_port()))
        return started

    monkeypatch.setattr(serve, "start_all", start_all)
    code, lines = serve_line(capsys, "--base-port", "0", "--metrics-base-port", "0")
    pid = started[0].process.pid
    assert code == 1
    assert lines[0] == (
        f"whospoke: error: the diarizer (pid {pid}) exited with code 3. The end of its log follows."
    )
    assert lines[1:-1] == [f"  line {i}" for i in range(5, 15)]
    assert lines[-1] == f"  (full log: {tmp_path / 'diarizer.log'})"


def test_port_layout_from_the_base_ports() -> None:
    from whospoke.cli.main import parser

    args = parser().parse_args(["serve", "--base-port", "7000", "--metrics-base-port", "9000"])
    ports = serve.plan_ports(args)
    assert ports.grpc == {"orchestrator": 7000, "transcriber": 7001, "diarizer": 7002}
    assert ports.metrics == {"orchestrator": 9000, "transcriber": 9001, "diarizer": 9002}
    assert ports.http == 8000
    assert (8000, "the gateway's HTTP port") in ports.wanted()
    args = parser().parse_args(
        ["serve", "--metrics-base-port", "0", "--diarizer-port", "7100", "--http-port", "0"]
    )
    ports = serve.plan_ports(args)
    assert ports.grpc == {"orchestrator": 50060, "transcriber": 50061, "diarizer": 7100}
    assert ports.metrics == {"orchestrator": 0, "transcriber": 0, "diarizer": 0}
    assert ports.http == 0 and all(port for port, _ in ports.wanted())
