"""Product benchmark: `Process` over gRPC versus the sequential in-process baseline.

The three services run as subprocesses (Whisper base int8, segmentation-3.0 + CAM++)
as `whospoke serve` runs them on these cores: each model with `serve`'s threads (half the
cores each; `--threads N` sets N), the diarizer at `serve`'s niceness (`--diarizer-nice`),
and the orchestrator flags `serve` gives it (each file's diarization starts after its first
segment). The baseline, alone on the machine, uses every core. In one run:
1. speed: `Process` on the 5-minute dev meeting and on the dev clips with their
   pauses shortened (first segment, per-stage times, progress over time) against the
   baseline, which transcribes the whole file with faster-whisper and then runs
   pyannote's whole-file pipeline in one process. `Process` runs `--repeats` times
   (default 3) and the run of median wall time is reported with the others' times:
   on a shared machine one run varies by up to 20 %;
2. accuracy: DER and WER of `Process` and of the baseline on the Asterisk
   conversation (three languages, two voices) and on sample.wav;
3. throughput with 1, 2 and 4 concurrent clients (queue positions observed);
4. peak RSS of each service after processing 5, 30 and 60 minutes (full mode).
`--quick` keeps sample.wav for speed and accuracy and skips 3 and 4.

Usage: .venv/bin/python bench/orchestrator_bench.py [--threads N] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench.inputs import Input, conversation, meeting, sample, short_pauses
from bench.outcome import Outcome, accuracy_row, result_turns, result_words
from bench.plots import progress_plot, rss_plot
from bench.report import family, machine, peak_kib, write_section
from whospoke.cli.flags import DIARIZER_NICE
from whospoke.cli.serve import orchestrator_flags, shared_threads, usable_cores
from whospoke.common.audio import Samples, wav_bytes
from whospoke.common.procs import ServiceProcess, free_port
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

INLINE_LIMIT = 16 << 20


class Services:
    """The three services as subprocesses, and `Process` calls against them."""

    def __init__(self, threads: int, orchestrator_args: Sequence[str] = ()) -> None:
        threads = shared_threads(threads)
        self.transcriber = ServiceProcess.start(
            "transcriber", ["--cpu-threads", str(threads)], metrics_port=free_port()
        )
        self.diarizer = ServiceProcess.start(
            "diarizer",
            ["--threads", str(threads), "--nice", str(DIARIZER_NICE)],
            metrics_port=free_port(),
        )
        t, d, first = [self.transcriber.address], self.diarizer.address, DIARIZER_NICE > 0
        flags = [*orchestrator_flags(t, d, None, first), "--max-queued-jobs", "8"]  # as `serve`
        self.orchestrator = ServiceProcess.start("orchestrator", [*flags, *orchestrator_args])
        self.all = [self.transcriber, self.diarizer, self.orchestrator]

    async def ready(self) -> None:
        await asyncio.gather(*(s.wait_serving(within=600) for s in self.all))

    def stop(self) -> None:
        for s in reversed(self.all):
            s.stop()

    def peak_rss_mib(self) -> dict[str, float]:
        """VmHWM of each service process, plus its child processes' (the transcriber's
        model processes): an upper bound of the service's peak."""
        return {s.name: sum(map(peak_kib, family(s.process.pid))) / 1024 for s in self.all}

    async def process(self, data: bytes, options: pb.ProcessOptions | None = None) -> Outcome:
        """Inline up to 16 MiB, else through `Upload` (as `whospoke process` does)."""
        async with self.orchestrator.channel() as channel:
            stub = pb_grpc.OrchestratorStub(channel)
            request = pb.ProcessRequest(options=options or pb.ProcessOptions())
            if len(data) <= INLINE_LIMIT:
                request.audio = data
            else:

                async def chunks() -> AsyncIterator[pb.UploadChunk]:
                    for start in range(0, len(data), 1 << 20):
                        yield pb.UploadChunk(data=data[start : start + (1 << 20)])

                uploaded = await stub.Upload(chunks())
                request.upload_id = uploaded.upload_id
            start = time.perf_counter()
            first, timeline, positions = 0.0, [], []
            result: pb.ProcessResult | None = None
            async for event in stub.Process(request, timeout=7200):
                now = time.perf_counter() - start
                kind = event.WhichOneof("event")
                if kind == "segment" and not first:
                    first = now
                elif kind == "progress":
                    p = event.progress
                    timeline.append((now, p.transcription_percent, p.diarization_percent))
                elif kind == "queued":
                    positions.append(event.queued.position)
                elif kind == "result":
                    result = event.result
            total = time.perf_counter() - start
        assert result is not None
        t = result.timings
        return Outcome(
            total,
            first - t.queued_seconds if first else 0.0,
            t.transcription_seconds,
            t.diarization_seconds,
            result_words(result),
            result_turns(result),
            result.text,
            timeline,
            positions,
        )


def baseline(audio: Samples, threads: int, language: str = "") -> Outcome:
    """faster-whisper on the whole file, then pyannote's whole-file pipeline."""
    import torch
    from faster_whisper import WhisperModel

    from diarizer.baseline import diarize_whole, stock_pipeline
    from whospoke.common.models import resolve_whisper

    torch.set_num_threads(threads)
    location = resolve_whisper("base").location
    model = WhisperModel(location, device="cpu", compute_type="int8", cpu_threads=threads)
    pipeline = stock_pipeline()
    start = time.perf_counter()
    segments, _ = model.transcribe(
        audio, language=language or None, vad_filter=True, word_timestamps=True
    )
    first, words, texts = 0.0, [], []
    for segment in segments:
        first = first or time.perf_counter() - start
        texts.append(segment.text)
        words += [(w.start, w.end, w.word) for w in segment.words or ()]
    transcribed = time.perf_counter()
    turns = diarize_whole(pipeline, audio).speaker_diarization
    end = time.perf_counter()
    return Outcome(
        end - start, first, transcribed - start, end - transcribed, words, turns, "".join(texts)
    )


async def throughput(services: Services, data: bytes, seconds: float) -> list[str]:
    rows = []
    for clients in (1, 2, 4):
        start = time.perf_counter()
        outcomes = await asyncio.gather(*(services.process(data) for _ in range(clients)))
        wall = time.perf_counter() - start
        positions = sorted({p for o in outcomes for p in o.positions})
        rows.append(
            f"| {clients} | {wall:.1f} | {clients * seconds / wall:.1f} | "
            f"{', '.join(map(str, positions)) or '-'} |"
        )
        print("throughput", rows[-1], flush=True)
    return rows


CANCEL_AFTER = (0.0, 0.75, 1.5, 2.25, 3.0, 3.75, 4.5)
"""Seconds after the first segment at which a cancel is sent: points spread over one
batched decoder pass (about 4.5 s for 4 windows of Whisper base on 2 CPU threads)."""


async def cancel_times(services: Services, data: bytes) -> list[float]:
    """Seconds from a client's cancel to both backends idle (no call in flight),
    the cancel sent each delay of `CANCEL_AFTER` after the first segment."""
    found = []
    for delay in CANCEL_AFTER:
        async with services.orchestrator.channel() as channel:
            call = pb_grpc.OrchestratorStub(channel).Process(pb.ProcessRequest(audio=data))
            async for event in call:
                if event.HasField("segment"):
                    break
            await asyncio.sleep(delay)
            call.cancel()
        cancelled = time.perf_counter()
        backends = (services.transcriber, services.diarizer)
        while time.perf_counter() < cancelled + 60:
            if not any(await asyncio.gather(*(asyncio.to_thread(b.in_flight) for b in backends))):
                break
            await asyncio.sleep(0.02)
        found.append(time.perf_counter() - cancelled)
        print("cancel", delay, f"s after the first segment: {found[-1]:.2f} s", flush=True)
    return found


async def measure_services(args: argparse.Namespace, inputs: dict[str, Input]) -> dict[str, Any]:
    services = Services(args.threads)
    found: dict[str, Any] = {}
    try:
        await services.ready()
        for name, source in inputs.items():
            options = pb.ProcessOptions(language="en") if name == "sample" else None
            runs = args.repeats if name in speed_inputs(args) else 1
            data = wav_bytes(source.audio)
            outcomes = [await services.process(data, options) for _ in range(runs)]
            found[name] = median_run(outcomes)
            times = ", ".join(f"{o.seconds:.1f}" for o in outcomes)
            print("whospoke", name, times, "s", flush=True)
        if not args.quick:
            speed = inputs["meeting-5"]
            found["throughput"] = await throughput(services, wav_bytes(speed.audio), speed.seconds)
            found["cancel"] = await cancel_times(services, wav_bytes(speed.audio))
            found["rss"] = [(5.0, services.peak_rss_mib())]
            for minutes in (30.0, 60.0):
                long = meeting(minutes)
                outcome = await services.process(wav_bytes(long.audio))
                found["rss"].append((minutes, services.peak_rss_mib()))
                print("rss", minutes, found["rss"][-1], f"{outcome.seconds:.1f} s", flush=True)
    finally:
        services.stop()
    return found


def speed_inputs(args: argparse.Namespace) -> list[str]:
    """The inputs whose `Process` wall time is compared with the baseline's."""
    return ["sample"] if args.quick else ["meeting-5", "short-pauses"]


def median_run(outcomes: list[Outcome]) -> Outcome:
    """The run of median wall time, carrying every run's time (`Outcome.runs`)."""
    ordered = sorted(outcomes, key=lambda o: o.seconds)
    chosen = ordered[(len(ordered) - 1) // 2]
    chosen.runs = [o.seconds for o in outcomes]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--threads", type=int, default=0, help="threads per model (0: as `whospoke serve`)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="`Process` runs per speed input")
    parser.add_argument("--quick", action="store_true", help="sample.wav only; no load or memory")
    args = parser.parse_args()
    inputs = {"sample": sample()}
    if not args.quick:
        inputs |= {
            "meeting-5": meeting(5),
            "short-pauses": short_pauses(),
            "conversation": conversation(),
        }
    ours = asyncio.run(measure_services(args, inputs))
    base = {}
    for name, source in inputs.items():
        base[name] = baseline(source.audio, usable_cores(), "en" if name == "sample" else "")
        print("baseline", name, f"{base[name].seconds:.1f} s", flush=True)
    write_report(args, inputs, ours, base)


def write_report(
    args: argparse.Namespace,
    inputs: dict[str, Input],
    ours: dict[str, Any],
    base: dict[str, Outcome],
) -> None:
    speeds, threads = speed_inputs(args), shared_threads(args.threads)
    mine = ours[speeds[0]]
    figures = Path(__file__).resolve().parent / "figures"
    progress_plot(mine.timeline, mine.first_segment, figures / "progress.png")
    lines = [
        f"Command: `python bench/orchestrator_bench.py{' --quick' if args.quick else ''}`.",
        f"Machine: {machine()}; {threads} thread{'s' if threads > 1 else ''} for each model, "
        f"both on the same cores, the diarizer at niceness {DIARIZER_NICE} and each file's "
        "diarization started after its first segment (as `whospoke serve` runs them).",
        "Models: Whisper base (int8), segmentation-3.0 + CAM++. Baseline: faster-whisper on the "
        f"whole file, then pyannote's whole-file pipeline, in one process on {usable_cores()} "
        f"threads. `Process` runs {args.repeats} times on each speed input; the table shows the "
        "run of median wall time.",
    ]
    for speed in speeds:
        lines += speed_lines(inputs[speed], ours[speed], base[speed])
    lines += [
        "",
        f"Progress events over time ({speeds[0]}): ![progress](bench/figures/progress.png)",
        "",
        "### Accuracy (DER collar 0 / 0.25 s, overlap scored; WER normalised)",
        "",
        "| input | path | wall time (s) | DER | speakers | WER |",
        "|---|---|---|---|---|---|",
    ]
    for name, source in inputs.items():
        lines.append(accuracy_row("baseline", source, base[name]))
        lines.append(accuracy_row("whospoke", source, ours[name]))
    if not args.quick:
        lines += scale_lines(ours)
        rss_plot(ours["rss"], figures / "rss.png")
    write_section("Product (Process)", "\n".join(lines), quick=args.quick)
    print("\n".join(lines), flush=True)


def speed_lines(source: Input, mine: Outcome, theirs: Outcome) -> list[str]:
    """One input's speed table: the baseline and `Process`, with their ratio."""
    lines = [
        "",
        f"### Speed ({source.name}, {source.seconds:.0f} s, sent as one WAV file)",
        "",
        "| path | wall time (s) | real-time factor | first segment (s, share) "
        "| transcription (s) | diarization (s) |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in (("sequential baseline", theirs), ("whospoke `Process`", mine)):
        lines.append(
            f"| {label} | {r.seconds:.1f} | {r.seconds / source.seconds:.3f} | "
            f"{r.first_segment:.1f} ({100 * r.first_segment / r.seconds:.0f} %) | "
            f"{r.transcription:.1f} | {r.diarization:.1f} |"
        )
    runs = ", ".join(f"{seconds:.1f}" for seconds in mine.runs)
    lines += [
        "",
        f"whospoke / baseline wall time: **{mine.seconds / theirs.seconds:.2f}** "
        f"(`Process` runs: {runs} s).",
    ]
    return lines


def scale_lines(ours: dict[str, Any]) -> list[str]:
    """The throughput and memory tables of the full run."""
    return [
        "",
        "### Throughput (concurrent clients on the 5-minute meeting; 1 job at a time)",
        "",
        "| clients | wall time (s) | audio seconds per second | queue positions seen |",
        "|---|---|---|---|",
        *ours["throughput"],
        "",
        "### Cancel (5-minute meeting): seconds from the client's cancel to both backends idle",
        "",
        f"Cancelled {', '.join(map(str, CANCEL_AFTER))} s after the first segment: "
        + ", ".join(f"{t:.2f}" for t in ours["cancel"])
        + f" s (median {statistics.median(ours['cancel']):.2f}, max {max(ours['cancel']):.2f}).",
        "",
        "### Peak RSS of each service (MiB): after the 5-minute jobs, then after one "
        "30-minute and one 60-minute `Process` (a service's child processes included: "
        "the transcriber's model process)",
        "",
        "| audio (min) | transcriber | diarizer | orchestrator |",
        "|---|---|---|---|",
        *[
            f"| {m:g} | {r['transcriber']:.0f} | {r['diarizer']:.0f} | {r['orchestrator']:.0f} |"
            for m, r in ours["rss"]
        ],
        "",
        "![rss](bench/figures/rss.png)",
    ]


if __name__ == "__main__":
    main()
