"""Two transcriber and two diarizer replicas (real processes, fake engines) behind one
orchestrator: every replica takes work, a replica killed with SIGKILL mid-run costs no
job (its calls are retried once on the other replica), and it takes work again once
it is back."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.backends import BackendSettings, GrpcDiarizer, GrpcTranscriber
from orchestrator.pools import TranscriberPools
from tests.fakes import harness, wav_bytes
from tests.polling import until
from whospoke.common.procs import ServiceProcess, free_port
from whospoke.v1 import orchestrator_pb2 as pb

AUDIO_SECONDS = 12
PACE = 0.1
"""Seconds the fake transcriber takes per second of audio: a job's call lasts ~1.2 s."""
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Replica:
    kind: str
    port: int
    metrics_port: int
    process: ServiceProcess | None = None

    def start(self) -> ServiceProcess:
        fd, log = tempfile.mkstemp(prefix=f"whospoke-fake-{self.kind}-", suffix=".log")
        command = [sys.executable, "-m", "tests.fake_backend", self.kind, "--pace", str(PACE)]
        command += ["--port", str(self.port), "--metrics-port", str(self.metrics_port)]
        with os.fdopen(fd, "wb") as out:
            popen = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        self.process = ServiceProcess(self.kind, self.port, self.metrics_port, popen, Path(log))
        return self.process

    def calls(self, method: str) -> float:
        """Finished calls of `method` (any status) since this process started."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        pattern = rf'^whospoke_grpc_requests_total\{{[^}}]*method="[^"]*{method}"[^}}]*\}} (\S+)$'
        return sum(float(v) for v in re.findall(pattern, text, re.M))


@contextmanager
def replicas(kind: str, count: int) -> Iterator[list[Replica]]:
    started = [Replica(kind, free_port(), free_port()) for _ in range(count)]
    try:
        for replica in started:
            replica.start()
        yield started
    finally:
        for replica in started:
            if replica.process is not None:
                replica.process.stop(5)


def target(replicas: list[Replica]) -> str:
    return "ipv4:" + ",".join(f"127.0.0.1:{r.port}" for r in replicas)


@asynccontextmanager
async def stack(tmp: Path) -> AsyncIterator[tuple[object, list[Replica], list[Replica]]]:
    with replicas("transcriber", 2) as transcribers, replicas("diarizer", 2) as diarizers:
        await asyncio.gather(
            *(r.process.wait_serving(60) for r in [*transcribers, *diarizers] if r.process)
        )
        async with AsyncExitStack() as exits:
            transcriber = GrpcTranscriber(BackendSettings(target(transcribers)))
            diarizer = GrpcDiarizer(BackendSettings(target(diarizers)))
            exits.push_async_callback(transcriber.close)
            exits.push_async_callback(diarizer.close)
            h = await exits.enter_async_context(
                harness(
                    TranscriberPools.single(transcriber),
                    diarizer,
                    tmp,
                    queued=16,
                    max_concurrent_jobs=8,
                )
            )
            yield h.stub, transcribers, diarizers


async def job(stub: object) -> pb.ProcessResult:
    request = pb.ProcessRequest(audio=wav_bytes(AUDIO_SECONDS))
    events = [e async for e in stub.Process(request, timeout=60)]  # type: ignore[attr-defined]
    return events[-1].result  # type: ignore[no-any-return]


def complete(result: pb.ProcessResult) -> bool:
    """Every second's segment exactly once, in order, and speakers for all of it."""
    texts = [s.text for s in result.transcription_segments]
    expected = [f" second {i}" for i in range(AUDIO_SECONDS)]
    speech = sum(s.speech_seconds for s in result.speakers)
    return texts == expected and speech == AUDIO_SECONDS


async def test_every_replica_serves_and_a_killed_one_costs_no_job(tmp_path: Path) -> None:
    async with stack(tmp_path) as (stub, transcribers, diarizers):
        results = await asyncio.gather(*(job(stub) for _ in range(8)))
        assert all(complete(r) for r in results)
        assert all(r.calls("Transcribe") >= 1 for r in transcribers)
        assert all(r.calls("Diarize") >= 1 for r in diarizers)

        victim = transcribers[0]
        before = transcribers[1].calls("Transcribe")
        assert victim.process is not None
        jobs = [asyncio.ensure_future(job(stub)) for _ in range(8)]
        process = victim.process

        async def started() -> bool:
            return await asyncio.to_thread(process.in_flight) > 0

        await until(started, "the victim's calls to start")
        os.kill(victim.process.process.pid, signal.SIGKILL)
        results = await asyncio.gather(*jobs)
        assert all(complete(r) for r in results), [len(r.segments) for r in results]
        # its own half of the calls, and the victim's, retried there
        assert transcribers[1].calls("Transcribe") - before >= 8 // 2 + 1

        restarted = victim.start()
        await restarted.wait_serving(60)
        for _ in range(20):  # round_robin reconnects within its backoff (2 s at most)
            assert complete(await job(stub))
            if victim.calls("Transcribe") >= 1:
                break
        assert victim.calls("Transcribe") >= 1


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Metrics are read from loopback directly, whatever proxy the environment names."""
    monkeypatch.setenv("no_proxy", "*")
