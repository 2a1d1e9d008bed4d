"""Diarizer benchmark: the incremental service engine versus pyannote's whole-file pipeline.

Inputs: pyannote's `sample.wav` (30 s, 2 speakers) and the ten 30 s meeting clips of
`../shared/data/diarization-dev` joined into one 5-minute recording (their RTTM
shifted alongside; speaker labels are corpus-wide), and its first 2.5 minutes for
the whole-file pipeline's memory slope. Memory at 30 and 60 minutes is measured
on the services by `bench/orchestrator_bench.py`. Each run is its own process
(models loaded, audio fed in 1 s chunks as the service does), so its peak RSS is
its own. Both paths use the same models and threads; whospoke's runs on the models
on PyTorch and, as the CPU default, on ONNX Runtime (segmentation-3.0's published
export, CAM++'s made at install). DER with pyannote.metrics (overlap scored, collar 0
and 0.25 s each side). CPU time counts every thread of the run.

Usage: .venv/bin/python bench/diarizer_bench.py [--data DIR] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from pyannote.core import Annotation

from bench.inputs import DEV_DATA, meeting, sample
from bench.outcome import annotation, scored_der
from bench.report import machine, write_section
from diarizer.baseline import diarize_whole, stock_pipeline
from diarizer.engine import DiarizerModelConfig, PyannoteEngine
from whospoke.common.audio import SAMPLE_RATE, Samples
from whospoke.contract.diarization import DiarizationOptions

DEFAULT_DATA = DEV_DATA


def recording(name: str, data: Path) -> tuple[Samples, Annotation]:
    """ "sample" or "meeting-N": the dev meeting repeated to N minutes."""
    source = sample() if name == "sample" else meeting(float(name.split("-")[1]), data)
    return source.audio, source.reference


def run_incremental(audio: Samples, runtime: str, threads: int) -> dict[str, Any]:
    """The service's engine, its models on PyTorch or (the CPU default) ONNX Runtime."""
    config = DiarizerModelConfig(
        device="cpu", threads=threads, segmentation_runtime=runtime, embedding_runtime=runtime
    )
    engine = PyannoteEngine(config)
    engine.load()
    session = engine.open_session(DiarizationOptions())
    stop = threading.Event()
    start, cpu = time.perf_counter(), cpu_seconds()
    for offset in range(0, audio.size, SAMPLE_RATE):
        session.push(audio[offset : offset + SAMPLE_RATE])
        for _ in session.run(False, stop):
            pass
    last_chunk = time.perf_counter()
    for _ in session.run(True, stop):
        pass
    turns = annotation(session.finish().turns)
    end = time.perf_counter()
    return {
        "turns": turns,
        "seconds": end - start,
        "cpu": cpu_seconds() - cpu,
        "tail": end - last_chunk,
    }


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_stock(audio: Samples) -> dict[str, Any]:
    pipeline = stock_pipeline()
    start, cpu = time.perf_counter(), cpu_seconds()
    turns = diarize_whole(pipeline, audio).speaker_diarization
    seconds = time.perf_counter() - start
    return {"turns": turns, "seconds": seconds, "cpu": cpu_seconds() - cpu, "tail": None}


def worker(path: str, name: str, data: Path, output: Path, threads: int) -> None:
    """One measured run in this process; writes figures and RTTM-like turns as JSON."""
    audio, reference = recording(name, data)
    result = run_stock(audio) if path == "stock" else run_incremental(audio, path, threads)
    duration = audio.size / SAMPLE_RATE
    turns: Annotation = result.pop("turns")
    result |= {
        "duration": duration,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "der0": scored_der(reference, turns, duration, 0.0),
        "der25": scored_der(reference, turns, duration, 0.25),
        "speakers": len(turns.labels()),
    }
    output.write_text(json.dumps(result))


def measure(path: str, name: str, args: argparse.Namespace) -> dict[str, Any]:
    output = Path(f"/tmp/whospoke-bench-{os.getpid()}-{path}-{name}.json")
    command = [sys.executable, __file__, "--worker", path, name, "--data", str(args.data)]
    command += ["--threads", str(args.threads), "--output", str(output)]
    subprocess.run(command, check=True)
    result: dict[str, Any] = json.loads(output.read_text())
    output.unlink()
    print(path, name, result, flush=True)
    return result


RUNS = [
    ("stock", "sample"),
    ("onnx", "sample"),
    ("stock", "meeting-2.5"),
    ("stock", "meeting-5"),
    ("torch", "meeting-5"),
    ("onnx", "meeting-5"),
]
LABELS = {
    "stock": "pyannote whole-file pipeline",
    "torch": "whospoke incremental, models on PyTorch",
    "onnx": "whospoke incremental, models on ONNX Runtime (the CPU default)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="sample.wav only")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        worker(args.worker[0], args.worker[1], args.data, args.output, args.threads)
        return
    runs = [r for r in RUNS if not args.quick or r[1] == "sample"]
    lines = [
        "Command: `python bench/diarizer_bench.py` (one run each, each in its own process).",
        f"Machine: {machine()}; torch threads {args.threads}.",
        "Models: pyannote segmentation-3.0 + CAM++ (embedded), 10 s windows every 1 s, "
        "agglomerative clustering. The whole-file pipeline embeds each (window, speaker) pair "
        "on its own, centroid linkage, threshold 0.6, min cluster size 12; whospoke pools "
        "CAM++ frame features computed once per stream, average linkage, threshold 0.39, min "
        "cluster size 8 (see the tuning section). The service's engine runs its models on ONNX "
        "Runtime on the CPU (`--segmentation-runtime`, `--embedding-runtime`); the PyTorch row "
        "runs the same weights on PyTorch.",
        "Inputs: `sample.wav` (30 s, 2 speakers); the ten clips of `shared/data/diarization-dev` "
        "joined (5 min, 21 speakers), and their first 2.5 min. Audio is fed in 1 s "
        "chunks; the tail is the time from the last chunk to the final turns.",
        "",
        "| path | input | wall time (s) | CPU time (s) | real-time factor "
        "| tail after last chunk (s) | peak RSS (MiB) | speakers | DER collar 0 "
        "| DER collar 0.25 s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path, name in runs:
        r = measure(path, name, args)
        tail = "-" if r["tail"] is None else f"{r['tail']:.2f}"
        lines.append(
            f"| {LABELS[path]} | {name} ({r['duration'] / 60:.1f} min) | {r['seconds']:.1f} "
            f"| {r['cpu']:.1f} | {r['seconds'] / r['duration']:.3f} | {tail} | {r['rss_mib']:.0f} "
            f"| {r['speakers']} | {100 * r['der0']:.1f} % | {100 * r['der25']:.1f} % |"
        )
    write_section("Diarizer", "\n".join(lines), quick=args.quick)
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
