"""HTTP gateway benchmark: what the OpenAI-compatible gateway adds to a transcription.

Transcriber (Whisper base int8), diarizer (segmentation-3.0 + CAM++), orchestrator (its
defaults: one job at a time, 16 may wait, so 8 clients never see RESOURCE_EXHAUSTED) and
the gateway run as subprocesses. In one run:
1. overhead on one file (the 5-minute dev meeting; `--quick`: sample.wav), calls
   interleaved so that the machine's drift cancels (HTTP, CLI, gRPC, then the reverse
   order, ...): `POST /v1/audio/transcriptions` with `response_format=diarized_json`
   (diarization on), `whospoke process FILE --format json` as a subprocess (the same
   work by default), and `Process` from this process (the floor both build on). The
   transcripts must be the same: the pipeline is deterministic at temperature 0;
2. requests per second on a 3-second file with 1 and 8 closed-loop clients, over HTTP
   and over gRPC `Process` directly (the gateway's cost under load);
3. where a request's time goes: a POST the gateway refuses after reading it (a bad
   `response_format`: body upload and multipart parsing, no orchestrator), the paired
   HTTP - gRPC latency differences, and the gateway process's CPU time per request
   (from /proc: unlike wall times, it does not drift with the machine's other load).

Usage: .venv/bin/python bench/gateway_bench.py [--threads 2] [--rounds 4] [--requests 40]
[--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2
from pyannote.core import Segment

from bench.gateway_report import PATHS, Audio, Found, Load, Reply, Segments, write_report
from bench.inputs import clips, meeting
from whospoke.common.audio import SAMPLE_RATE, Samples, wav_bytes
from whospoke.common.decode import decode_audio
from whospoke.common.procs import ServiceProcess
from whospoke.evaluation import sample_path
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

CLI = Path(sys.executable).parent / "whospoke"
CALL_TIMEOUT = 7200.0
SHORT_SECONDS = 3.0


class Services:
    """The three gRPC services and the gateway, as subprocesses."""

    def __init__(self, threads: int) -> None:
        self.transcriber = ServiceProcess.start("transcriber", ["--cpu-threads", str(threads)])
        self.diarizer = ServiceProcess.start("diarizer", ["--threads", str(threads)])
        backends = ["--transcriber", self.transcriber.address, "--diarizer", self.diarizer.address]
        self.orchestrator = ServiceProcess.start("orchestrator", backends)
        self.gateway = ServiceProcess.start(
            "gateway", ["--orchestrator", self.orchestrator.address]
        )
        self.all = [self.transcriber, self.diarizer, self.orchestrator, self.gateway]
        self.url = f"http://{self.gateway.address}/v1/audio/transcriptions"

    async def ready(self) -> None:
        await asyncio.gather(*(s.wait_serving(within=600) for s in self.all))

    def stop(self) -> None:
        for s in reversed(self.all):
            s.stop()

    def gateway_cpu(self) -> float:
        """The gateway process's user + system CPU seconds so far."""
        fields = Path(f"/proc/{self.gateway.process.pid}/stat").read_text().rsplit(")")[-1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _segments(items: list[dict[str, str | None]]) -> Segments:
    return tuple(((s["speaker"] or "unknown"), (s["text"] or "").strip()) for s in items)


async def via_http(client: httpx2.AsyncClient, url: str, audio: Audio, fmt: str) -> Reply:
    """One `POST` of the file (multipart, as the SDKs send it)."""
    form = {"model": "whisper-1", "response_format": fmt}
    files = {"file": (audio.file.name, audio.data, "audio/wav")}
    start = time.perf_counter()
    response = await client.post(url, data=form, files=files)
    seconds = time.perf_counter() - start
    if fmt != "diarized_json":
        return Reply("rejected", seconds, str(response.status_code), ())
    response.raise_for_status()
    body = response.json()
    return Reply("http", seconds, body["text"], _segments(body["segments"]))


async def via_cli(services: Services, audio: Audio) -> Reply:
    """`whospoke process`, from the process start to its exit."""
    address = services.orchestrator.address
    command = [str(CLI), "process", str(audio.file), "--format", "json", "-q", "--server", address]
    start = time.perf_counter()
    pipe = asyncio.subprocess.PIPE
    process = await asyncio.create_subprocess_exec(*command, stdout=pipe, stderr=pipe)
    out, err = await process.communicate()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"whospoke process exited {process.returncode}: {err.decode()}")
    body = json.loads(out)
    return Reply("cli", seconds, body["text"], _segments(body["segments"]))


async def via_grpc(stub: pb_grpc.OrchestratorAsyncStub, audio: Audio) -> Reply:
    """`Process` with the default options (what the CLI sends without flags)."""
    start = time.perf_counter()
    result: pb.ProcessResult | None = None
    async for event in stub.Process(pb.ProcessRequest(audio=audio.data), timeout=CALL_TIMEOUT):
        if event.HasField("result"):
            result = event.result
    seconds = time.perf_counter() - start
    assert result is not None, "Process ended without a result"
    segments = tuple((s.speaker or "unknown", s.text.strip()) for s in result.segments)
    return Reply("grpc", seconds, result.text, segments)


class Clients:
    """Each path's client: an HTTP client and a gRPC channel per concurrent caller."""

    def __init__(self, services: Services, count: int) -> None:
        self.services = services
        self.http = [httpx2.AsyncClient(timeout=CALL_TIMEOUT) for _ in range(count)]
        self.channels = [services.orchestrator.channel() for _ in range(count)]
        self.stubs = [pb_grpc.OrchestratorStub(c) for c in self.channels]

    def call(self, path: str, index: int = 0) -> Callable[[Audio], Awaitable[Reply]]:
        if path == "http":
            client, url = self.http[index], self.services.url
            return lambda audio: via_http(client, url, audio, "diarized_json")
        if path == "cli":
            return lambda audio: via_cli(self.services, audio)
        return lambda audio: via_grpc(self.stubs[index], audio)

    async def timed(self, path: str, audio: Audio) -> Reply:
        """One call, with the gateway's CPU seconds spent meanwhile (calls one at a time)."""
        before = self.services.gateway_cpu()
        reply = await self.call(path)(audio)
        return replace(reply, cpu=self.services.gateway_cpu() - before)

    async def close(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.http))
        await asyncio.gather(*(c.close() for c in self.channels))


async def overhead(clients: Clients, audio: Audio, rounds: int) -> list[dict[str, Reply]]:
    """Each round calls every path once, in alternating order (A B C, C B A, ...)."""
    found = []
    for index in range(rounds):
        order = PATHS if index % 2 == 0 else PATHS[::-1]
        replies = {}
        for path in order:
            replies[path] = await clients.timed(path, audio)
            print(f"round {index + 1} {path}: {replies[path].seconds:.2f} s", flush=True)
        found.append(replies)
    return found


async def alternating(clients: Clients, pairs: int, audio: Audio) -> list[Load]:
    """One client, gRPC and HTTP requests alternating (g h, h g, ...): the i-th latencies of
    the two paths are a pair taken at the same moment, so their difference is the gateway's
    cost per request with the machine's drift cancelled."""
    replies: dict[str, list[Reply]] = {"grpc": [], "http": []}
    for index in range(pairs):
        for path in ("grpc", "http") if index % 2 == 0 else ("http", "grpc"):
            replies[path].append(await clients.timed(path, audio))
    found = [
        Load(
            path, 1, [r.seconds for r in got], sum(r.seconds for r in got), sum(r.cpu for r in got)
        )
        for path, got in replies.items()
    ]
    print(", ".join(f"{x.path} x1: {x.rate:.2f} req/s" for x in found), flush=True)
    return found


async def load(clients: Clients, path: str, count: int, requests: int, audio: Audio) -> Load:
    """`count` callers, each sending its next request when its previous answer is in."""
    latencies: list[float] = []
    shares = [requests // count + (i < requests % count) for i in range(count)]

    async def caller(index: int) -> None:
        call = clients.call(path, index)
        for _ in range(shares[index]):
            latencies.append((await call(audio)).seconds)

    start, cpu = time.perf_counter(), clients.services.gateway_cpu()
    await asyncio.gather(*(caller(i) for i in range(count)))
    wall = time.perf_counter() - start
    found = Load(path, count, latencies, wall, clients.services.gateway_cpu() - cpu)
    print(f"{path} x{count}: {found.rate:.2f} req/s", flush=True)
    return found


async def rejected(clients: Clients, audio: Audio, times: int) -> float:
    """Mean seconds of a POST refused after its body was read (400, no orchestrator call)."""
    seconds = []
    for _ in range(times):
        reply = await via_http(clients.http[0], clients.services.url, audio, "bogus")
        assert reply.text == "400", f"expected 400, got {reply.text}"
        seconds.append(reply.seconds)
    return statistics.mean(seconds)


async def measure(args: argparse.Namespace, long: Audio, short: Audio) -> Found:
    services = Services(args.threads)
    try:
        await services.ready()
        clients = Clients(services, 8)
        try:
            for path in PATHS:  # warm-up, not measured: first calls, caches, lazy imports
                await clients.call(path)(short)
            rounds = await overhead(clients, long, args.rounds)
            loads = await alternating(clients, args.requests // 2, short)
            for index in range(args.load_passes):
                for path in ("grpc", "http") if index % 2 == 0 else ("http", "grpc"):
                    loads.append(await load(clients, path, 8, args.requests, short))
            refused = {a.name: await rejected(clients, a, 5) for a in (short, long)}
        finally:
            await clients.close()
    finally:
        services.stop()
    return Found(rounds, loads, refused)


def short_clip(workdir: Path) -> Audio:
    """The first 3 s of the dev clip with the most reference speech in them."""

    window = Segment(0, SHORT_SECONDS)
    audio, reference = max(
        clips(), key=lambda c: c[1].crop(window).get_timeline().support().duration()
    )
    name = f"{reference.uri} first {SHORT_SECONDS:g} s"
    return _audio(name, audio[: int(SHORT_SECONDS * SAMPLE_RATE)], workdir / "short.wav")


def long_file(quick: bool, workdir: Path) -> Audio:
    if quick:
        path = sample_path()
        return Audio("sample", path.read_bytes(), decode_audio(path).size / SAMPLE_RATE, path)
    source = meeting(5)
    return _audio(source.name, source.audio, workdir / "meeting-5.wav")


def _audio(name: str, samples: Samples, path: Path) -> Audio:
    data = wav_bytes(samples)
    path.write_bytes(data)
    return Audio(name, data, samples.size / SAMPLE_RATE, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, help="overhead rounds (default 4, quick 2)")
    parser.add_argument("--requests", type=int, help="requests per 8-client pass (40, quick 16)")
    parser.add_argument("--quick", action="store_true", help="sample.wav, fewer calls")
    args = parser.parse_args()
    args.rounds = args.rounds or (2 if args.quick else 4)
    args.requests = args.requests or (16 if args.quick else 40)
    args.load_passes = 1 if args.quick else 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="whospoke-gateway-bench-") as work:
        short, long = short_clip(Path(work)), long_file(args.quick, Path(work))
        found = asyncio.run(measure(args, long, short))
    write_report(args, found, long, short, (time.perf_counter() - started) / 60)


if __name__ == "__main__":
    main()
