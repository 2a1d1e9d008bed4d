"""Orchestrator replicas as real processes on one job store; `kill -9` mid-job.

The backends are real gRPC servers in this process with fake engines, so a
test holds a job inside its transcription (the engine's gate) for as long as it
needs, knows which replica runs it, and kills that one. Leases are short (1.5 s)
so that re-queueing is quick; everything else is waited on, not slept on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from diarizer.config import DiarizerConfig
from diarizer.engine import DiarizerModelConfig
from diarizer.server import build_spec as diarizer_spec
from tests.fakes import FakeDiarizationEngine, FakeTranscriptionEngine, wav_bytes
from tests.pg import PostgresServer
from tests.polling import until
from transcriber.config import ModelConfig, TranscriberConfig
from transcriber.server import build_spec as transcriber_spec
from whospoke.common.config import ServerConfig
from whospoke.common.metrics import Metrics
from whospoke.common.procs import ServiceProcess
from whospoke.common.server import RunningServer, start_server
from whospoke.v1 import jobs_pb2 as jobs
from whospoke.v1 import jobs_pb2_grpc as jobs_grpc
from whospoke.v1 import orchestrator_pb2 as pb

pytestmark = pytest.mark.e2e
LEASE_SECONDS = "1.5"


@dataclass
class Backends:
    transcriber: str
    diarizer: str
    engine: FakeTranscriptionEngine
    gate: threading.Event = field(default_factory=threading.Event)


@asynccontextmanager
async def backends() -> AsyncIterator[Backends]:
    """A transcriber and a diarizer with fake engines; transcription waits for `gate`."""
    gate = threading.Event()
    engine = FakeTranscriptionEngine(gate=gate)
    t_config = TranscriberConfig(server=ServerConfig(port=0), model=ModelConfig(model="fake"))
    d_config = DiarizerConfig(server=ServerConfig(port=0), model=DiarizerModelConfig())
    servers: list[RunningServer] = []
    try:
        t_metrics, d_metrics = Metrics("transcriber"), Metrics("diarizer")
        for server, spec, metrics in (
            (t_config.server, transcriber_spec(t_config, engine, t_metrics), t_metrics),
            (
                d_config.server,
                diarizer_spec(d_config, FakeDiarizationEngine(), d_metrics),
                d_metrics,
            ),
        ):
            running = await start_server(server, spec, metrics)
            await running.set_serving(True)
            servers.append(running)
        t, d = (f"127.0.0.1:{s.port}" for s in servers)
        yield Backends(t, d, engine, gate)
    finally:
        gate.set()
        for running in servers:
            await running.stop(0)


@contextmanager
def replicas(
    b: Backends, database: str, tmp: Path, names: tuple[str, ...]
) -> Iterator[dict[str, ServiceProcess]]:
    started: dict[str, ServiceProcess] = {}
    try:
        for name in names:
            started[name] = start_replica(b, database, tmp, name)
        yield started
    finally:
        for process in started.values():
            if process.process.poll() is None:
                process.stop(5)


def start_replica(b: Backends, database: str, tmp: Path, name: str) -> ServiceProcess:
    args = ["--transcriber", b.transcriber, "--diarizer", b.diarizer]
    args += ["--data-dir", str(tmp / name), "--jobs-db", database]
    args += ["--job-lease-seconds", LEASE_SECONDS, "--job-poll-seconds", "0.1"]
    args += ["--grace-seconds", "1"]
    if name.startswith("r"):
        args += ["--replica-id", name]
    return ServiceProcess.start("orchestrator", args)


async def finish(stub: jobs_grpc.JobsAsyncStub, job_id: str) -> jobs.Job:
    """Watch the job to its end (reconnecting while its replica changes); the job."""
    after = 0
    for _ in range(20):
        try:
            request = jobs.WatchJobRequest(job_id=job_id, after_sequence=after)
            async for event in stub.WatchJob(request, timeout=60):
                after = event.sequence or after
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            continue
        break
    return await stub.GetJob(jobs.GetJobRequest(job_id=job_id))


async def running_jobs(stub: jobs_grpc.JobsAsyncStub) -> list[jobs.Job]:
    page = await stub.ListJobs(jobs.ListJobsRequest(state=jobs.JOB_STATE_RUNNING))
    return [j for j in page.jobs if j.stage in (pb.STAGE_TRANSCRIBING, pb.STAGE_DIARIZING)]


async def test_ten_jobs_run_once_each_spread_over_two_replicas(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    pg_url = pg_server.create_database("replicas_spread")
    async with backends() as b:
        with replicas(b, pg_url, tmp_path, ("r1", "r2")) as started:
            await asyncio.gather(*(p.wait_serving(60) for p in started.values()))
            channels = [p.channel() for p in started.values()]
            stubs = [jobs_grpc.JobsStub(c) for c in channels]
            ids = [
                (await stubs[n % 2].SubmitJob(jobs.SubmitJobRequest(audio=wav_bytes(2)))).job_id
                for n in range(10)
            ]
            await until(lambda: _running_count(stubs[0], 2), "both replicas running a job")
            b.gate.set()
            done = [await finish(stubs[n % 2], job_id) for n, job_id in enumerate(ids)]
            for channel in channels:
                await channel.close()
    assert all(j.state == jobs.JOB_STATE_SUCCEEDED and j.attempts == 1 for j in done)
    assert {j.replica for j in done} == {"r1", "r2"}
    assert len(b.engine.sessions) == 10
    assert all(j.result.text == done[0].result.text for j in done)


async def _running_count(stub: jobs_grpc.JobsAsyncStub, count: int) -> bool:
    return len(await running_jobs(stub)) >= count


async def test_killed_replicas_job_completes_on_the_other(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    pg_url = pg_server.create_database("replicas_kill")
    async with backends() as b:
        with replicas(b, pg_url, tmp_path, ("r1", "r2")) as started:
            await asyncio.gather(*(p.wait_serving(60) for p in started.values()))
            stubs = {name: jobs_grpc.JobsStub(p.channel()) for name, p in started.items()}
            b.gate.set()
            audio = wav_bytes(3)
            undisturbed = await finish(
                stubs["r1"],
                (await stubs["r1"].SubmitJob(jobs.SubmitJobRequest(audio=audio))).job_id,
            )
            b.gate.clear()
            job_id = (await stubs["r1"].SubmitJob(jobs.SubmitJobRequest(audio=audio))).job_id
            await until(lambda: _running_count(stubs["r2"], 1), "the job to start")
            victim = (await stubs["r2"].GetJob(jobs.GetJobRequest(job_id=job_id))).replica
            os.kill(started[victim].process.pid, signal.SIGKILL)
            started[victim].process.wait()
            survivor = "r2" if victim == "r1" else "r1"
            b.gate.set()
            job = await finish(stubs[survivor], job_id)
    assert job.state == jobs.JOB_STATE_SUCCEEDED
    assert job.attempts == 2 and job.replica == survivor
    assert list(job.result.segments) == list(undisturbed.result.segments)
    assert list(job.result.diarization_turns) == list(undisturbed.result.diarization_turns)
    assert job.result.text == undisturbed.result.text


async def test_sqlite_orchestrator_killed_with_jobs_queued_loses_nothing(tmp_path: Path) -> None:
    async with backends() as b:
        process = start_replica(b, "", tmp_path, "single")
        try:
            await process.wait_serving(60)
            channel = process.channel()
            stub = jobs_grpc.JobsStub(channel)
            ids = [
                (await stub.SubmitJob(jobs.SubmitJobRequest(audio=wav_bytes(2)))).job_id
                for _ in range(3)
            ]
            await until(lambda: _running_count(stub, 1), "the first job to start")
            os.kill(process.process.pid, signal.SIGKILL)
            process.process.wait()
            await channel.close()
            b.gate.set()
            process = start_replica(b, "", tmp_path, "single")
            await process.wait_serving(60)
            async with process.channel() as channel:
                stub = jobs_grpc.JobsStub(channel)
                done = [await finish(stub, job_id) for job_id in ids]
        finally:
            process.stop(5)
    assert [j.state for j in done] == [jobs.JOB_STATE_SUCCEEDED] * 3
    assert sorted(j.attempts for j in done) == [1, 1, 2]
    assert len({j.result.text for j in done}) == 1


async def test_database_down_at_start_is_a_clear_error_and_exit_1(tmp_path: Path) -> None:
    async with backends() as b:
        unreachable = "postgresql://whospoke:secret@127.0.0.1:9/jobs"
        process = start_replica(b, unreachable, tmp_path, "r1")
        code = await asyncio.to_thread(process.process.wait, 60)
    log = process.log()
    assert code == 1
    assert "job store" in log.lower() and "127.0.0.1:9" in log
    assert "secret" not in log


async def test_jobs_resume_when_the_database_returns(tmp_path: Path) -> None:
    server = PostgresServer.start_new()
    try:
        async with backends() as b:
            with replicas(b, server.url(), tmp_path, ("r1",)) as started:
                await started["r1"].wait_serving(60)
                async with started["r1"].channel() as channel:
                    stub = jobs_grpc.JobsStub(channel)
                    ids = [
                        (await stub.SubmitJob(jobs.SubmitJobRequest(audio=wav_bytes(2)))).job_id
                        for _ in range(2)
                    ]
                    await until(lambda: _running_count(stub, 1), "the first job to start")
                    await asyncio.to_thread(server.stop, "fast")
                    b.gate.set()  # the running job ends while its events cannot be stored
                    with pytest.raises(grpc.aio.AioRpcError) as down:
                        await stub.GetJob(jobs.GetJobRequest(job_id=ids[0]))
                    await asyncio.to_thread(server.start)
                    done = [await finish(stub, job_id) for job_id in ids]
    finally:
        server.close()
    assert down.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "job store" in (down.value.details() or "")
    assert [j.state for j in done] == [jobs.JOB_STATE_SUCCEEDED] * 2
    assert done[0].result.text == done[1].result.text != ""
