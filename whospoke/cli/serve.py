"""`whospoke serve`: the three services and the HTTP gateway on this machine, with the
embedded default models.

Ports follow one layout: the orchestrator on the base port, the transcriber on
base+1 and the diarizer on base+2, and the same for metrics (9460, 9461, 9462), so
every service can be scraped; the gateway (HTTP API and dashboard) on --http-port.
All ports are checked before anything starts, since a port taken by another stack
would otherwise be discovered minutes later, after the models have loaded, or (worse)
answer the health checks in our place.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from rich.console import Console

from whospoke.cli.errors import CliError, UsageError
from whospoke.cli.flags import DIARIZER_NICE
from whospoke.common.paths import default_data_dir
from whospoke.common.procs import PortUnusable, ServiceFailed, ServiceProcess, check_port
from whospoke.v1.orchestrator_pb2 import GetStatusRequest
from whospoke.v1.orchestrator_pb2_grpc import OrchestratorStub

STARTUP_SECONDS = 600.0
SERVICES = ("orchestrator", "transcriber", "diarizer")
"""In port order: base, base+1, base+2; further transcribers (one per extra model) follow."""


def models(args: argparse.Namespace) -> list[str]:
    """The Whisper models to serve, one transcriber each: `--models`, else `--model`."""
    if not args.models:
        return [args.model]
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    if not names or len(set(names)) < len(names):
        raise UsageError(f"--models {args.models!r}", "Name each model once: --models base,tiny.en")
    return names


def transcriber_names(count: int) -> list[str]:
    """The transcribers' service names: "transcriber", then "transcriber-2", ..."""
    return ["transcriber", *(f"transcriber-{i}" for i in range(2, count + 1))]


@dataclass(frozen=True)
class Ports:
    """The gRPC and metrics port of each service (0: a free port; metrics 0: off)."""

    grpc: dict[str, int]
    metrics: dict[str, int]
    http: int = 0
    """The gateway's HTTP port (0: no gateway)."""

    def wanted(self) -> list[tuple[int, str]]:
        """Every fixed port with what it is for, as "the transcriber's gRPC port"."""
        ports = [(p, f"the {name}'s gRPC port") for name, p in self.grpc.items() if p]
        ports += [(p, f"the {name}'s metrics port") for name, p in self.metrics.items() if p]
        if self.http:
            ports.append((self.http, "the gateway's HTTP port"))
        return ports


def plan_ports(args: argparse.Namespace) -> Ports:
    """The layout from --base-port and --metrics-base-port, with the per-port overrides."""
    base, metrics_base = args.base_port, args.metrics_base_port
    names = [*SERVICES, *transcriber_names(len(models(args)))[1:]]
    grpc_ports = {name: base + i if base else 0 for i, name in enumerate(names)}
    metrics = {name: metrics_base + i if metrics_base else 0 for i, name in enumerate(names)}
    for name, override in (
        ("orchestrator", args.port),
        ("transcriber", args.transcriber_port),
        ("diarizer", args.diarizer_port),
    ):
        if override is not None:
            grpc_ports[name] = override
    if args.metrics_port is not None:
        metrics["orchestrator"] = args.metrics_port
    ports = Ports(grpc_ports, metrics, args.http_port)
    seen: dict[int, str] = {}
    for port, what in ports.wanted():
        if not 1 <= port <= 65535:
            raise UsageError(f"{what} would be {port}", "Ports go from 1 to 65535.")
        if port in seen:
            raise UsageError(
                f"{what} and {seen[port]} are both {port}", "Give each service its own port."
            )
        seen[port] = what
    return ports


def check_ports(host: str, ports: Ports) -> None:
    """Every port `serve` will listen on is free, or a usage error names the first that is not."""
    for port, what in ports.wanted():
        try:
            check_port(host, port)
        except PortUnusable as error:
            raise UsageError(
                f"{what}: {error}",
                "Stop that process, or pick other ports with --base-port and --metrics-base-port.",
            ) from None


def data_dir(args: argparse.Namespace) -> Path:
    """`--data-dir`, else `$WHOSPOKE_DATA_DIR`, else the user's data directory.

    Jobs live there (database and audio) so that stopping and starting `serve`
    keeps them; the orchestrator creates it. A path that is a file is a usage
    error now rather than a failed orchestrator later.
    """
    raw = args.data_dir or os.environ.get("WHOSPOKE_DATA_DIR", "").strip()
    path = Path(raw).expanduser() if raw else default_data_dir()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--data-dir {path} is not a directory", "Give a directory.")
    return path.absolute()


def orchestrator_flags(
    transcribers: Sequence[str], diarizer: str, data: Path | None, transcriber_first: bool = False
) -> list[str]:
    """The orchestrator's command line under `serve`: its backends (a transcriber pool per
    address, named by the model its `GetInfo` reports) and where jobs live.

    `transcriber_first` (the diarizer is niced): each file's diarization starts after its
    first segment, since both models share this machine's cores.

    Webhooks to private addresses are allowed: on one machine, the receiver is
    usually on loopback too.
    """
    flags = [flag for address in transcribers for flag in ("--transcriber", address)]
    flags += ["--diarizer", diarizer]
    if data is not None:
        flags += ["--data-dir", str(data)]
    if transcriber_first:
        flags += ["--diarization-start", "after-first-segment"]
    return [*flags, "--webhook-allow-private"]


def start_all(
    host: str,
    ports: Ports,
    served: Sequence[str],
    threads: int,
    data: Path | None = None,
    diarizer_nice: int = DIARIZER_NICE,
) -> list[ServiceProcess]:
    """Start a transcriber per model in `served`, the diarizer, the orchestrator (backends
    first) and the gateway (when `ports.http` is set) as subprocesses.

    `data` is the orchestrator's `--data-dir` (None: the orchestrator's default);
    `diarizer_nice` the diarizer's `--nice` (see `DIARIZER_NICE`); above 0, the
    orchestrator also starts each file's diarization after its first segment.

    If one cannot be started, those already running are stopped before the error
    propagates: `serve` never leaves a child behind.
    """
    started: list[ServiceProcess] = []
    try:
        names = transcriber_names(len(served))
        for name, model in zip(names, served, strict=True):
            flags = ["--model", model, *_threads("--cpu-threads", threads)]
            grpc_port, metrics_port = ports.grpc[name], ports.metrics[name]
            started.append(
                ServiceProcess.start(name, flags, grpc_port, metrics_port, host, "transcriber")
            )
        flags = [*_threads("--threads", threads), "--nice", str(diarizer_nice)]
        diarizer = ports.grpc["diarizer"], ports.metrics["diarizer"]
        started.append(ServiceProcess.start("diarizer", flags, *diarizer, host))
        addresses = [s.address for s in started[:-1]], started[-1].address
        flags = orchestrator_flags(*addresses, data, transcriber_first=diarizer_nice > 0)
        started.append(
            ServiceProcess.start(
                "orchestrator",
                flags,
                ports.grpc["orchestrator"],
                ports.metrics["orchestrator"],
                host,
            )
        )
        if ports.http:
            flags = ["--orchestrator", started[-1].address]
            started.append(ServiceProcess.start("gateway", flags, ports.http, 0, host))
    except BaseException:
        for service in reversed(started):
            service.stop()
        raise
    return started


def _threads(flag: str, threads: int) -> list[str]:
    return [flag, str(shared_threads(threads))]


def shared_threads(threads: int) -> int:
    """Threads per model when the transcriber and the diarizer share this machine's cores.

    0 (automatic) gives each half of the cores this process may use: left to their
    libraries, both take every core and contend. `bench/threads_bench.py` on 2 cores:
    1+1 was the fastest `Process` of the 5-minute meeting on an Intel Xeon (2+2 and 1+2
    took 9 % longer, 2+1 13 %), 2+1 on an AMD EPYC (1+1 21 % longer, 1+2 32 %): the
    winner depends on the CPU, and half each was never the slowest. On GPUs the models
    do not run on these threads.
    """
    if threads:
        return threads
    return max(1, usable_cores() // 2)


def usable_cores() -> int:
    """The cores this process may run on (its affinity, which containers narrow)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores or 2


def failure(error: ServiceFailed) -> CliError:
    """A service that died: one line, then the end of its log, then where the log is."""
    details = (*error.tail, f"(full log: {error.log_path})")
    return CliError(error.summary, "The end of its log follows.", details)


async def wait_all(services: Sequence[ServiceProcess]) -> None:
    """Wait until every service serves, and the orchestrator sees its backends serving; the
    first failure stops the wait."""
    try:
        await asyncio.gather(*(s.wait_serving(STARTUP_SECONDS) for s in services))
        await backends_reached(next(s for s in services if s.name == "orchestrator"))
    except ServiceFailed as error:
        raise failure(error) from None
    except TimeoutError:
        raise CliError(
            f"the services were not serving after {STARTUP_SECONDS:.0f} s",
            "See the logs: " + ", ".join(str(s.log_path) for s in services) + ".",
        ) from None


async def backends_reached(orchestrator: ServiceProcess) -> None:
    """Wait until the orchestrator itself sees every backend serving: its channels to them
    may still be in reconnect backoff (up to 2 s) just after they came up, and "ready"
    promises that a job sent now runs."""
    deadline = asyncio.get_running_loop().time() + STARTUP_SECONDS
    async with orchestrator.channel() as channel:
        stub = OrchestratorStub(channel)
        while True:
            orchestrator.check_alive()
            with contextlib.suppress(grpc.aio.AioRpcError):
                status = await stub.GetStatus(GetStatusRequest(), timeout=2)
                if status.backends and all(b.serving for b in status.backends):
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise CliError(
                    f"the orchestrator did not reach its backends within {STARTUP_SECONDS:.0f} s",
                    f"See its log: {orchestrator.log_path}.",
                )
            await asyncio.sleep(0.2)


async def serve(args: argparse.Namespace) -> int:
    ports = plan_ports(args)
    data = await asyncio.to_thread(data_dir, args)
    await asyncio.to_thread(check_ports, args.host, ports)
    console = Console(stderr=True, highlight=False)
    served = models(args)
    services = start_all(args.host, ports, served, args.threads, data, args.diarizer_nice)
    try:
        with console.status("loading models (Whisper and pyannote)..."):
            await wait_all(services)
        _report(console, services, data)
        await _until_signal(services)
    finally:
        for s in reversed(services):
            await asyncio.to_thread(s.stop)
    return 0


def _report(console: Console, services: Sequence[ServiceProcess], data: Path) -> None:
    """One line per service (address, metrics, log), then how to use them."""
    orchestrator = next(s for s in services if s.name == "orchestrator")
    for s in services:
        if s.name == "gateway":
            uses = "dashboard, /v1 (OpenAI), /docs"
            line = f"{'gateway':<13} http://{s.address}  {uses}  log {s.log_path}"
        else:
            metrics = f"metrics :{s.metrics_port}" if s.metrics_port else "metrics off"
            line = f"{s.name:<13} {s.address}  {metrics}  log {s.log_path}"
        console.print(line, markup=False, soft_wrap=True)
    console.print(f"{'jobs':<13} {data}", markup=False, soft_wrap=True)
    console.print(
        f"[bold green]ready[/]: whospoke process FILE --server {orchestrator.address}"
        "  (Ctrl-C stops)",
        soft_wrap=True,
    )


async def _until_signal(services: list[ServiceProcess]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        for s in services:
            try:
                s.check_alive()
            except ServiceFailed as error:
                raise failure(error) from None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
