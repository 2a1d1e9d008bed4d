"""Running whospoke services as subprocesses: for the demo, the end-to-end tests,
the benchmarks and `whospoke serve`.

A health check answered on a port proves nothing about who answered it: another
stack may hold the port while the process started here failed to bind it. So a
service only counts as started when the listening socket belongs to its own
process (read from /proc on Linux), and a process that exits while starting is
reported with the end of its log instead of a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

MODULES = {
    "transcriber": "transcriber",
    "diarizer": "diarizer",
    "orchestrator": "orchestrator",
    "gateway": "gateway",
}
HTTP_SERVICES = {"gateway"}
"""Services that speak HTTP: no separate metrics port (/metrics is on their own), and an HTTP
answer rather than the gRPC health service says they are up."""
LOG_TAIL_LINES = 10
PROC = Path("/proc")
WILDCARDS = {ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::")}


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PortUnusable(OSError):
    """A port cannot be listened on; `str()` says why, naming the holder when known."""


def check_port(host: str, port: int) -> None:
    """Raise `PortUnusable` when `host:port` cannot be listened on right now.

    Binds (with SO_REUSEADDR, as gRPC and the metrics server do, so that sockets in
    TIME_WAIT do not count) every address `host` resolves to, then lets go.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise PortUnusable(f"cannot resolve host {host!r} ({error.strerror})") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
                sock.listen(1)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise PortUnusable(
                        f"port {port} is in use by {describe_holder(port)}"
                    ) from None
                raise PortUnusable(f"cannot listen on {host}:{port} ({error.strerror})") from None


def describe_holder(port: int) -> str:
    """ "pid 123 (python -m transcriber …)", or "another process" when it cannot be known."""
    pids = sorted(listener_pids(port) or ())
    if not pids:
        return "another process"
    return ", ".join(f"pid {pid} ({command_line(pid)})" for pid in pids[:3])


def command_line(pid: int, limit: int = 80) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "command unknown"
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def listener_pids(port: int, address: str | None = None) -> set[int] | None:
    """Pids of the processes listening on `port` (on `address` or a wildcard, if given).

    None when this system has no /proc/net/tcp (the owner cannot be known); the set
    may miss processes of other users, whose descriptors cannot be read.
    """
    inodes = _listening_inodes(port, address)
    if inodes is None:
        return None
    if not inodes:
        return set()
    pids = set()
    for entry in PROC.iterdir():
        if entry.name.isdigit() and _socket_inodes(int(entry.name)) & inodes:
            pids.add(int(entry.name))
    return pids


def owns_listener(pid: int, port: int, address: str | None = None) -> bool | None:
    """Whether process `pid` holds a listening socket on `port`; None when unknowable."""
    inodes = _listening_inodes(port, address)
    if inodes is None:
        return None
    return bool(_socket_inodes(pid) & inodes)


def _listening_inodes(port: int, address: str | None) -> set[int] | None:
    wanted = ipaddress.ip_address(address) if address else None
    found: set[int] | None = None
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        found = found or set()
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A: LISTEN
                continue
            host_hex, port_hex = fields[1].split(":")
            if int(port_hex, 16) != port:
                continue
            local = _address(host_hex)
            if wanted is None or local in WILDCARDS or _same(local, wanted):
                found.add(int(fields[9]))
    return found


def _address(hex_text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """/proc/net/tcp{,6} addresses: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_text)
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(swapped)


def _same(
    a: ipaddress.IPv4Address | ipaddress.IPv6Address,
    b: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> bool:
    def v4(x: ipaddress.IPv4Address | ipaddress.IPv6Address) -> object:
        return x.ipv4_mapped if isinstance(x, ipaddress.IPv6Address) and x.ipv4_mapped else x

    return v4(a) == v4(b)


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in (PROC / str(pid) / "fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


class ServiceFailed(RuntimeError):
    """A service exited or could not be verified; `summary` is one line, `tail` its log's end."""

    def __init__(self, summary: str, tail: Sequence[str], log_path: Path) -> None:
        self.summary = summary
        self.tail = tuple(tail)
        self.log_path = log_path
        body = "\n".join(f"  {line}" for line in self.tail)
        super().__init__(f"{summary}; log {log_path}:\n{body}" if body else summary)


@dataclass
class ServiceProcess:
    """A service started with `python -m <service>`, its port and its log."""

    name: str
    port: int
    metrics_port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    host: str = "127.0.0.1"

    @classmethod
    def start(
        cls,
        name: str,
        args: Sequence[str],
        port: int = 0,
        metrics_port: int = 0,
        host: str | None = None,
        service: str = "",
    ) -> ServiceProcess:
        """Start it; `host` (default: the service's own, 127.0.0.1) is passed as --host.

        `service` is the kind of service when `name` is not (a second transcriber).
        """
        port = port or free_port()
        fd, log_name = tempfile.mkstemp(prefix=f"whospoke-{name}-", suffix=".log")
        service = service or name
        command = [sys.executable, "-m", MODULES[service], "--port", str(port)]
        if service not in HTTP_SERVICES:
            command += ["--metrics-port", str(metrics_port)]
        command += args
        if host is not None:
            command += ["--host", host]
        env = {**os.environ, "PYANNOTE_METRICS_ENABLED": "false"}
        with os.fdopen(fd, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        return cls(name, port, metrics_port, process, Path(log_name), host or "127.0.0.1")

    @property
    def connect_host(self) -> str:
        """Where to reach it: loopback when it listens on every interface."""
        if self.host in ("", "0.0.0.0", "::", "[::]"):
            return "127.0.0.1"
        return self.host

    @property
    def address(self) -> str:
        host = self.connect_host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.address)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def in_flight(self) -> float:
        """Calls it is serving now, from its metrics (started with a metrics port).

        The model services count a call until its worker thread is idle again, so
        zero means the model has stopped: what cancel tests and benches wait for.
        """
        url = f"http://{self.connect_host}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        values = re.findall(r"^whospoke_grpc_requests_in_flight\{[^}]*\} (\S+)$", text, re.M)
        return sum(float(v) for v in values)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        with contextlib.suppress(OSError):
            return [line for line in self.log().splitlines() if line.strip()][-lines:]
        return []

    def check_alive(self) -> None:
        """Raise `ServiceFailed` with the end of its log if the process has exited."""
        code = self.process.poll()
        if code is not None:
            raise ServiceFailed(
                f"the {self.name} (pid {self.process.pid}) exited with code {code}",
                self.log_tail(),
                self.log_path,
            )

    async def wait_serving(self, within: float) -> None:
        """Poll the standard health service until this process answers SERVING (an HTTP
        service: until it answers HTTP at all; its /health then tells the rest).

        Raises `ServiceFailed` when the process exits, or when the port answers but
        is held by another process; `TimeoutError` after `within` seconds.
        """
        deadline = time.monotonic() + within
        if self.name in HTTP_SERVICES:
            await self._wait_http(deadline, within)
            return
        async with self.channel() as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                self.check_alive()
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                except grpc.aio.AioRpcError:
                    reply = None
                if reply is not None and reply.status == health_pb2.HealthCheckResponse.SERVING:
                    self._check_owner()
                    return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} not SERVING after {within} s:\n{self.log()}")

    async def _wait_http(self, deadline: float, within: float) -> None:
        while time.monotonic() < deadline:
            self.check_alive()
            if await _answers_http(self.connect_host, self.port):
                self._check_owner()
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} not answering HTTP after {within} s:\n{self.log()}")

    def _check_owner(self) -> None:
        """The SERVING answer came from this process, not from whatever else holds the port."""
        host = self.connect_host
        address = host if _is_ip(host) else None
        if owns_listener(self.process.pid, self.port, address) is not False:
            return
        self.check_alive()
        raise ServiceFailed(
            f"port {self.port} answers health checks but is held by "
            f"{describe_holder(self.port)}, not by the {self.name} started here "
            f"(pid {self.process.pid})",
            self.log_tail(),
            self.log_path,
        )

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


async def _answers_http(host: str, port: int) -> bool:
    """Whether host:port answers an HTTP request (any status)."""
    try:
        async with asyncio.timeout(2):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(f"GET /health HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False
    return line.startswith(b"HTTP/1.")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
