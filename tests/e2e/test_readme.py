"""README.md's `run` blocks that need the real services: `whospoke serve` itself, and the
commands that read what it serves (metrics), executed as written on the default ports.

The blocks name the default ports (50060-50062, metrics 9460-9462, HTTP 8000), so this runs
only when they are free; otherwise it skips and says which port is taken. `whospoke serve` loads the
real default models (Whisper base, segmentation-3.0 + CAM++): about 20 s on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests import readme
from whospoke.cli.main import parser as cli_parser
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.models]

STACK = [b for b in readme.blocks() if b.marker == "run" and b.needs_stack]
SERVE = [b for b in STACK if "whospoke serve" in b.script]
STARTUP_SECONDS = 300.0


SERVICES = ("orchestrator", "transcriber", "diarizer", "gateway")


def default_ports() -> list[int]:
    """gRPC ports, then metrics ports (orchestrator, transcriber, diarizer), then HTTP."""
    args = cli_parser().parse_args(["serve"])
    grpc_and_metrics = [
        base + i for base in (args.base_port, args.metrics_base_port) for i in range(3)
    ]
    return [*grpc_and_metrics, args.http_port]


def taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def environment(data_dir: Path) -> dict[str, str]:
    """No WHOSPOKE_* settings of the caller's, and jobs kept in the test's own folder."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("WHOSPOKE_")}
    extra = {"WHOSPOKE_DATA_DIR": str(data_dir)}
    return {**keep, **extra, "PYANNOTE_METRICS_ENABLED": "false", "HF_HUB_OFFLINE": "1"}


def all_serving(address: str) -> bool:
    """The orchestrator is SERVING and reports both backends SERVING."""
    with grpc.insecure_channel(address) as channel:
        try:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
            status = pb_grpc.OrchestratorStub(channel).GetStatus(pb.GetStatusRequest(), timeout=2)
        except grpc.RpcError:
            return False
    serving = health.status == health_pb2.HealthCheckResponse.SERVING
    return serving and len(status.backends) == 2 and all(b.serving for b in status.backends)


class Output:
    """`whospoke serve`'s output, read as it comes: `ready` is the event to wait for."""

    def __init__(self, serve: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        self.settled = threading.Event()
        """Set at the `ready` line, or when the output ends (the process exited)."""
        self._reader = threading.Thread(target=self._read, args=(serve,), daemon=True)
        self._reader.start()

    def _read(self, serve: subprocess.Popen[bytes]) -> None:
        assert serve.stdout is not None
        for raw in serve.stdout:
            self.lines.append(raw.decode(errors="replace"))
            if self.lines[-1].lstrip().startswith("ready"):
                self.settled.set()
        self.settled.set()

    @property
    def ready(self) -> bool:
        return any(line.lstrip().startswith("ready") for line in self.lines)

    def __str__(self) -> str:
        return "".join(self.lines)


def test_the_readme_starts_the_stack_in_one_block() -> None:
    assert len(SERVE) == 1 and len(STACK) >= 2


@pytest.mark.skipif(len(SERVE) != 1, reason="checked by the test above")
def test_readme_stack_blocks_run_on_whospoke_serve(tmp_path: Path) -> None:
    needed = {readme.program(argv) for block in STACK for argv in block.commands}
    absent = sorted(p for p in needed if p != "whospoke" and shutil.which(p) is None)
    if absent:
        pytest.skip(f"the README's commands need {absent}, not installed here")
    busy = [port for port in default_ports() if taken(port)]
    if busy:
        pytest.skip(f"the README's commands use the default ports; in use here: {busy}")
    work = tmp_path / "checkout"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))
    serve = subprocess.Popen(
        ["bash", "-eu", "-o", "pipefail", "-c", SERVE[0].script],
        cwd=work,
        env=environment(tmp_path / "data"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = Output(serve)
    try:
        output.settled.wait(STARTUP_SECONDS)
        assert output.ready, f"whospoke serve did not get ready:\n{output}"
        assert all_serving(f"127.0.0.1:{default_ports()[0]}"), str(output)
        for block in STACK:
            if block is SERVE[0]:
                continue
            done = subprocess.run(
                ["bash", "-eu", "-o", "pipefail", "-c", block.script],
                cwd=work,
                env=environment(tmp_path / "data"),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, f"{block.id}: {done.stderr}"
            for service, port in zip(SERVICES, default_ports()[3:], strict=True):
                if f"{port}/metrics" in block.script:
                    assert f'service="{service}"' in done.stdout, f"{block.id}: {service}"
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGINT)
        code = serve.wait(timeout=60)
    assert code == 0, f"Ctrl-C should stop whospoke serve cleanly:\n{output}"
