"""Clustering memory and time against recording length: pyannote's clustering of every
embedding versus whospoke's bounded sample (diarizer/clustering.py).

Each run is its own process, so its peak RSS is its own: synthetic CAM++-sized
embeddings (192 dimensions, 12 voices taking turns) for a recording of the given
length, 1.5 active (window, speaker) embeddings per 1 s window as on the dev
meeting, clustered with the default settings. Reported: peak RSS above the
process's RSS before clustering, wall time, and whether both clusterings put the
windows in the same speakers (the bounded one is exact under its bound).

Usage: .venv/bin/python bench/clustering_bench.py [--hours 0.5 1 2 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from pyannote.core import SlidingWindow, SlidingWindowFeature

from bench.report import machine, write_section

PER_WINDOW = 1.5
"""Active (window, speaker) embeddings per 1 s window on the dev meeting."""
VOICES = 12


def recording(hours: float) -> tuple[np.ndarray, SlidingWindowFeature]:
    """Embeddings (windows, 2 local speakers, 192) and their segmentations; the second
    local speaker is active in half the windows."""
    rng = np.random.default_rng(0)
    windows = int(hours * 3600)
    directions = rng.normal(size=(VOICES, 192))
    turns = (np.arange(windows)[:, None] // 30 + np.array([0, 5])) % VOICES
    embeddings = directions[turns] + rng.normal(scale=0.6, size=(windows, 2, 192))
    frames = np.zeros((windows, 589, 2), dtype=np.float32)
    frames[:, :400, 0] = 1
    frames[::2, 400:, 1] = 1
    window = SlidingWindow(start=0.0, duration=10.0, step=1.0)
    return embeddings.astype(np.float32), SlidingWindowFeature(frames, window)


def worker(kind: str, hours: float) -> dict[str, float | list[int]]:
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering

    from diarizer.clustering import BoundedClustering
    from diarizer.incremental import ClusteringSettings

    embeddings, segmentations = recording(hours)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    clustering = (
        BoundedClustering(metric="cosine")
        if kind == "bounded"
        else AgglomerativeClustering(metric="cosine")
    )
    settings = ClusteringSettings()
    clustering.instantiate(
        {
            "threshold": settings.threshold,
            "method": settings.method,
            "min_cluster_size": settings.min_cluster_size,
        }
    )
    start = time.perf_counter()
    hard, _, _ = clustering(embeddings=embeddings, segmentations=segmentations)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rss_mib": peak - before, "hard": hard.ravel().tolist()}


def run(kind: str, hours: float) -> dict[str, float | list[int]]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(hours)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float | list[int]] = json.loads(out.splitlines()[-1])
    return result


def same_speakers(a: list[int], b: list[int]) -> bool:
    """One-to-one correspondence between the two labellings."""
    pairs = set(zip(a, b, strict=True))
    return len(pairs) == len(set(a)) == len(set(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], float(args.worker[1]))))
        return
    rows = []
    for hours in args.hours:
        stock, bounded = run("stock", hours), run("bounded", hours)
        embeddings = int(hours * 3600 * PER_WINDOW)
        same = same_speakers(stock["hard"], bounded["hard"])  # type: ignore[arg-type]
        rows.append(
            f"| {hours:g} | {embeddings} | {stock['rss_mib']:.0f} | {stock['seconds']:.1f} "
            f"| {bounded['rss_mib']:.0f} | {bounded['seconds']:.1f} | {'yes' if same else 'no'} |"
        )
        print(rows[-1], flush=True)
    lines = [
        "Command: `python bench/clustering_bench.py`.",
        f"Machine: {machine()}.",
        "Synthetic CAM++-sized embeddings (192 dimensions, 12 voices), 1.5 active per 1 s "
        "window; default settings (average linkage, 0.39, min cluster size 8). Peak RSS "
        "above the process's before clustering; each run in its own process.",
        "",
        "| hours | embeddings | pyannote: every embedding (MiB) | (s) "
        "| whospoke: at most 4,000 (MiB) | (s) | same speakers |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    write_section("Clustering memory", "\n".join(lines))


if __name__ == "__main__":
    main()
