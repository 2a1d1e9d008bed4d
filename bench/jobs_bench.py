"""Durable jobs benchmark: the `Jobs` queue against `Process` calls one after another.

Transcriber and diarizer (Whisper base int8, segmentation-3.0 + CAM++) and two
orchestrators (one job at a time, the default), one on SQLite and one on a throwaway
PostgreSQL, run as subprocesses. The mix: the ten 30 s dev meeting clips and
pyannote's sample.wav alternating, so 20 jobs are each clip once and sample.wav ten
times (600 s of audio); `--quick` takes 4.
1. Throughput, passes interleaved (Process, SQLite, PostgreSQL, then the reverse
   order, ...) so that the machine's drift cancels in the means. Process: the files
   through `Process` one after another; queue: every `SubmitJob` at once, then one
   `WatchJob` per job until every result. The cost is the throughput the queue loses.
2. Store overhead per job, in-process on the store API, without models: the store
   calls the server makes for a job (submit with the audio in 1 MiB chunks, claim,
   read the audio back, a real job's events, finish with its result, get).

Usage: .venv/bin/python bench/jobs_bench.py [--threads 2] [--rounds 4] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import DEV_DATA
from bench.plots import completion_plot
from bench.report import ROOT, machine, write_section
from orchestrator.store import JobState, JobStore, NewJob, open_store
from tests.pg import PostgresServer, server_binaries
from whospoke.common.audio import SAMPLE_RATE
from whospoke.common.decode import decode_audio
from whospoke.common.procs import ServiceProcess
from whospoke.evaluation import sample_path
from whospoke.v1 import jobs_pb2 as jobs
from whospoke.v1 import jobs_pb2_grpc as jobs_grpc
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

FIGURES = ROOT / "bench" / "figures"
OUT = ROOT / "bench" / "out"  # where --quick draws (ignored by git), sparing the full figure
CHUNK = 1 << 20
CALL_TIMEOUT = 1800.0
LABELS = {"process": "`Process`", "sqlite": "queue, SQLite", "postgresql": "queue, PostgreSQL"}
MODES = tuple(LABELS)


@dataclass(frozen=True)
class Clip:
    """One file of the mix, sent as its bytes (what a client would send)."""

    name: str
    data: bytes
    seconds: float
    options: pb.ProcessOptions


@dataclass
class Pass:
    """One measured pass over the mix: when each job's result arrived since the start."""

    mode: str
    done: list[float] = field(default_factory=list)
    ended: list[float] = field(default_factory=list)
    """When each job ended in the store (queue passes); for Process, `done`."""
    busy: list[float] = field(default_factory=list)
    """Each job's processing time on the server (its result's total less its wait)."""
    events: list[int] = field(default_factory=list)
    """Stored events per job (queue passes)."""

    @property
    def wall(self) -> float:
        return max(self.done)


def _busy(timings: pb.Timings) -> float:
    return timings.total_seconds - timings.queued_seconds


def mix(count: int) -> list[Clip]:
    """Dev clips and sample.wav alternating: clip 0, sample, clip 1, sample, ..."""
    paths = [path for clip in sorted(DEV_DATA.glob("*.wav")) for path in (clip, sample_path())]
    return [_clip(path, "en" if path == sample_path() else "") for path in paths[:count]]


def _clip(path: Path, language: str) -> Clip:
    seconds = decode_audio(path).size / SAMPLE_RATE
    return Clip(path.stem, path.read_bytes(), seconds, pb.ProcessOptions(language=language))


class Services:
    """Transcriber, diarizer, and one orchestrator per job store, as subprocesses."""

    def __init__(self, threads: int, workdir: Path, pg_url: str | None) -> None:
        self.transcriber = ServiceProcess.start("transcriber", ["--cpu-threads", str(threads)])
        self.diarizer = ServiceProcess.start("diarizer", ["--threads", str(threads)])
        backends = ["--transcriber", self.transcriber.address, "--diarizer", self.diarizer.address]
        stores = {"sqlite": [], **({"postgresql": ["--jobs-db", pg_url]} if pg_url else {})}
        self.orchestrators = {
            name: ServiceProcess.start(
                "orchestrator", [*backends, f"--data-dir={workdir / name}", *x]
            )
            for name, x in stores.items()
        }
        self.all = [self.transcriber, self.diarizer, *self.orchestrators.values()]

    async def ready(self) -> None:
        await asyncio.gather(*(s.wait_serving(within=600) for s in self.all))

    def stop(self) -> None:
        for s in reversed(self.all):
            s.stop()

    async def process_pass(self, clips: list[Clip]) -> Pass:
        """Each file through `Process`, the next call once the previous result is in."""
        found = Pass("process")
        async with self.orchestrators["sqlite"].channel() as channel:
            stub = pb_grpc.OrchestratorStub(channel)
            start = time.time()
            for clip in clips:
                request = pb.ProcessRequest(audio=clip.data, options=clip.options)
                async for event in stub.Process(request, timeout=CALL_TIMEOUT):
                    if event.HasField("result"):
                        found.done.append(time.time() - start)
                        found.busy.append(_busy(event.result.timings))
        found.ended = found.done
        return found

    async def queue_pass(self, store: str, clips: list[Clip]) -> tuple[Pass, list[pb.ProcessEvent]]:
        """All files submitted at once, then watched to their results; and the first's events."""
        found = Pass(store)
        async with self.orchestrators[store].channel() as channel:
            stub = jobs_grpc.JobsStub(channel)
            start = time.time()

            asked = [jobs.SubmitJobRequest(audio=c.data, options=c.options) for c in clips]
            answers = await asyncio.gather(*(stub.SubmitJob(r, timeout=60) for r in asked))
            ids = [answer.job_id for answer in answers]
            watched = await asyncio.gather(*(_watch(stub, job_id, start) for job_id in ids))
        found.done, found.ended = [w[0] for w in watched], [w[1] for w in watched]
        found.events = [len(events) for *_, events in watched]
        found.busy = [_busy(events[-1].result.timings) for *_, events in watched]
        return found, watched[0][2]


async def _watch(
    stub: jobs_grpc.JobsAsyncStub, job_id: str, start: float
) -> tuple[float, float, list[pb.ProcessEvent]]:
    """When the job's result reached us and when the job ended in the store (seconds since
    `start`), and its stored events (those with a sequence)."""
    events = []
    async for event in stub.WatchJob(jobs.WatchJobRequest(job_id=job_id), timeout=CALL_TIMEOUT):
        if event.sequence:
            events.append(event)
        if event.HasField("result"):
            done = time.time() - start
            job = await stub.GetJob(jobs.GetJobRequest(job_id=job_id), timeout=CALL_TIMEOUT)
            return done, job.end_time.ToNanoseconds() / 1e9 - start, events
    raise RuntimeError(f"job {job_id}: the watch ended without a result")


async def measure(
    args: argparse.Namespace, clips: list[Clip], workdir: Path, pg_url: str | None
) -> tuple[list[Pass], list[pb.ProcessEvent]]:
    services = Services(args.threads, workdir, pg_url)
    passes: list[Pass] = []
    try:
        await services.ready()
        # Warm-up (not measured): models, decoders and each store's first queries.
        await services.process_pass(clips[:1])
        (_, events), *_ = [await services.queue_pass(s, clips[:1]) for s in services.orchestrators]
        modes = ["process", *services.orchestrators]
        # Rounds alternate direction (A B C, C B A, ...): linear drift cancels in the means.
        for mode in [m for r in range(args.rounds) for m in (modes if r % 2 == 0 else modes[::-1])]:
            if mode == "process":
                found = await services.process_pass(clips)
            else:
                found, _ = await services.queue_pass(mode, clips)
            passes.append(found)
            print(f"{mode}: {found.wall:.1f} s for {len(clips)} jobs", flush=True)
    finally:
        services.stop()
    return passes, events


PARTS = ("submit", "claim", "events", "finish", "get")


def store_overhead(
    store: JobStore, clips: list[Clip], events: list[pb.ProcessEvent], count: int
) -> dict[str, float]:
    """Mean milliseconds per job of each part of its life in the store (`PARTS`)."""
    store.migrate()
    writes = [_event_write(event) for event in events]
    result = next(e.result for e in events if e.HasField("result")).SerializeToString()
    totals = dict.fromkeys(PARTS, 0.0)
    for index in range(count):
        clip = clips[index % len(clips)]
        job = NewJob(secrets.token_urlsafe(16), "bench", b"", filename=clip.name)
        for part, step in zip(PARTS, _steps(store, job, clip.data, writes, result), strict=True):
            begin = time.perf_counter()
            step()
            totals[part] += time.perf_counter() - begin
    store.close()
    return {part: 1000 * total / count for part, total in totals.items()}


def _steps(
    store: JobStore, job: NewJob, audio: bytes, writes: list[EventWrite], result: bytes
) -> list[Callable[[], object]]:
    """The store calls the server makes for one job, by part (`JobsServicer.SubmitJob`,
    `JobQueue`, `EventWriter`; reads by `WatchJob` and `GetJob` depend on the clients)."""
    key, me = job.job_id, "bench"
    chunks = (audio[at : at + CHUNK] for at in range(0, len(audio), CHUNK))
    return [
        lambda: (store.stats(), store.submit(job, chunks), store.queue_position(key)),
        lambda: (store.claim(me, 30.0), list(store.read_audio(key))),
        lambda: [store.append_event(key, me, *write) for write in writes],
        lambda: store.finish(key, me, JobState.SUCCEEDED, 3600.0, result),
        lambda: store.get(key),
    ]


EventWrite = tuple[bytes, int | None, bytes | None, float | None]


def _event_write(event: pb.ProcessEvent) -> EventWrite:
    """The arguments `EventWriter` passes to `append_event` for this event."""
    kind = event.WhichOneof("event")
    stage = event.stage.stage if kind == "stage" else None
    progress = event.progress.SerializeToString() if kind == "progress" else None
    seconds = event.stage.audio_duration_seconds if kind == "stage" else None
    return event.SerializeToString(), stage, progress, seconds or None


def throughput_lines(clips: list[Clip], passes: list[Pass]) -> list[str]:
    """The table per path; the cost is measured on wall time and on the idle gaps."""
    audio = sum(clip.seconds for clip in clips)
    lines = [
        "| path | passes | wall time per pass (s), mean (range) | jobs per minute "
        "| audio seconds per second | throughput cost vs `Process` "
        "| server idle between jobs (ms per job) | cost from the idle gaps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = gap = 0.0
    verdict = []
    for mode in (m for m in MODES if any(p.mode == m for p in passes)):
        walls = [p.wall for p in passes if p.mode == mode]
        mean = sum(walls) / len(walls)
        idle = sum(max(p.ended) - sum(p.busy) for p in passes if p.mode == mode) / len(walls)
        idle /= len(clips)
        base, gap = (mean, idle) if mode == "process" else (base, gap)
        job, extra = base / len(clips), idle - gap
        costs = [f"**{100 * (1 - base / mean):+.1f} %**", f"{100 * extra / (job + extra):+.2f} %"]
        costs = ["-", "-"] if mode == "process" else costs
        verdict += [] if mode == "process" else [f"{LABELS[mode]} {costs[1]}"]
        lines.append(
            f"| {LABELS[mode]} | {len(walls)} | {mean:.1f} ({min(walls):.1f}-{max(walls):.1f}) "
            f"| {60 * len(clips) / mean:.2f} | {audio / mean:.2f} | {costs[0]} "
            f"| {1000 * idle:.0f} | {costs[1]} |"
        )
    order = ", ".join(f"{p.mode} {p.wall:.1f} s" for p in passes)
    own = [p.wall for p in passes if p.mode == "process"]
    spread = 50 * (max(own) - min(own)) / (sum(own) / len(own))
    judged = (
        f"`Process`'s own passes spread ±{spread:.1f} % around their mean, so wall-time "
        f"differences within that are noise; the queue's own cost, its idle gaps, is "
        f"{', '.join(verdict)} (target: at most 2 %)."
    )
    return [
        *lines,
        "",
        judged,
        "",
        f"Passes in the order run: {order}. {EXPLAIN} {delivery(passes)}",
    ]


EXPLAIN = (
    "Wall time: until the last result reached the client. Idle: until the last job ended on "
    "the server, less each result's processing time, per job; its cost is the extra gap "
    "against `Process` (less sensitive than wall times to the models' run-to-run noise)."
)


def delivery(passes: list[Pass]) -> str:
    """How long after its job ended each result reached its `WatchJob`, per store."""
    parts = []
    for m in [m for m in MODES[1:] if any(p.mode == m for p in passes)]:
        late = [d - e for p in passes if p.mode == m for d, e in zip(p.done, p.ended, strict=True)]
        slow = sum(x > 0.5 for x in late)
        parts.append(
            f"{m} mean {1000 * sum(late) / len(late):.0f} ms, {slow} of {len(late)} over 0.5 s"
        )
    return "Results reached their `WatchJob` after the job ended: " + "; ".join(parts) + "."


def store_lines(
    overhead: dict[str, dict[str, float]], job_seconds: float, events: int, passes: list[Pass]
) -> list[str]:
    counts = [n for p in passes for n in p.events]
    lines = [
        f"Events stored per job in the queue passes: mean {sum(counts) / len(counts):.1f} "
        f"(range {min(counts)}-{max(counts)}); the store benchmark replays the {events} "
        "events of a dev-clip job and its result, with its audio file.",
        "",
        "| store | submit (stats, submit, position) | claim, read audio "
        f"| {events} events | finish | one get | total per job | share of a job |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for store, parts in overhead.items():
        total, cells = sum(parts.values()), " | ".join(f"{parts[p]:.1f}" for p in PARTS)
        share = total / 10 / job_seconds
        lines.append(f"| {store} | {cells} | **{total:.1f}** | {share:.2f} % |")
    note = f"Milliseconds; the share is of the mean `Process` job ({job_seconds:.2f} s)."
    return [*lines, "", note]


def write_report(
    args: argparse.Namespace,
    clips: list[Clip],
    found: tuple[list[Pass], int, dict[str, dict[str, float]]],
    minutes: float,
) -> None:
    passes, events, overhead = found
    process = [p for p in passes if p.mode == "process"]
    job_seconds = sum(p.wall for p in process) / sum(len(p.done) for p in process)
    figure = (OUT if args.quick else FIGURES) / "jobs_completion.png"
    completion_plot({m: [p.done for p in passes if p.mode == m] for m in MODES}, figure)
    command = "python bench/jobs_bench.py" + (" --quick" if args.quick else "")
    lines = [
        f"Command: `{command}` ({minutes:.0f} min in all).",
        f"Machine: {machine()}; {args.threads} threads for each model, both on the same cores.",
        "Models: Whisper base (int8), segmentation-3.0 + CAM++; one job at a time per "
        "orchestrator (the default). PostgreSQL: a throwaway local server, fsync off.",
        f"Mix: {len(clips)} jobs, {sum(c.seconds for c in clips):.0f} s of audio, sent inline: "
        f"dev meeting clips and sample.wav alternating ({', '.join(c.name for c in clips)}).",
        "",
        "### Throughput",
        "",
        *throughput_lines(clips, passes),
        "",
        f"![jobs]({figure.relative_to(ROOT)})",
        "",
        f"### Store overhead per job (in-process, {args.store_jobs} jobs, no models)",
        "",
        *store_lines(overhead, job_seconds, events, passes),
    ]
    write_section("Durable jobs", "\n".join(lines), quick=args.quick)
    print("\n".join(lines), flush=True)


def run(args: argparse.Namespace) -> None:
    clips = mix(4 if args.quick else 20)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="whospoke-jobs-bench-") as work:
        pg = PostgresServer.start_new() if server_binaries() else None
        try:
            passes, events = asyncio.run(measure(args, clips, Path(work), pg.url() if pg else None))
            urls = {"sqlite": "", **({"postgresql": pg.create_database("bench")} if pg else {})}
            overhead = {
                kind: store_overhead(open_store(url, Path(work)), clips, events, args.store_jobs)
                for kind, url in urls.items()
            }
        finally:
            if pg is not None:
                pg.close()
    write_report(args, clips, (passes, len(events), overhead), (time.perf_counter() - started) / 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, help="passes per path (default 4, quick 1)")
    parser.add_argument("--store-jobs", type=int, help="default 200, quick 20")
    parser.add_argument("--quick", action="store_true", help="4 jobs, one pass per path")
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 4)
    args.store_jobs = args.store_jobs or (20 if args.quick else 200)
    run(args)


if __name__ == "__main__":
    main()
