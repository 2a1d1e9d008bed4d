"""Diarizer benchmark: the incremental diarizer versus pyannote's whole-file pipeline.

Input: the ten 30 s meeting clips of `../shared/data/diarization-dev` joined into one
5-minute recording (their RTTM shifted alongside; speaker labels are corpus-wide).
Both paths use the same models and threads; DER with pyannote.metrics (overlap
scored, collar 0 and 0.25 s each side).

Usage: .venv/bin/python bench/diarizer_bench.py [--data DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from bench.report import machine, write_section
from diarizer.baseline import diarize_whole, stock_pipeline
from diarizer.incremental import IncrementalDiarizer
from diarizer.models import CamPlusPlus, load_segmentation
from whospoke.common.audio import SAMPLE_RATE, Samples, decode_audio

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared/data/diarization-dev"


def meeting(data: Path) -> tuple[Samples, Annotation]:
    """The clips joined in name order, with one reference annotation on the joined timeline."""
    rows: dict[str, list[tuple[float, float, str]]] = {}
    for line in (data / "reference.rttm").read_text().splitlines():
        f = line.split()
        rows.setdefault(f[1], []).append((float(f[3]), float(f[4]), f[7]))
    parts, reference, offset = [], Annotation(uri="meeting"), 0.0
    for wav in sorted(data.glob("*.wav")):
        audio = decode_audio(wav)
        for start, duration, speaker in rows.get(wav.stem, []):
            reference[Segment(offset + start, offset + start + duration)] = speaker
        parts.append(audio)
        offset += audio.size / SAMPLE_RATE
    return np.concatenate(parts), reference


def der(reference: Annotation, hypothesis: Annotation, duration: float, collar: float) -> float:
    metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=False)
    return float(metric(reference, hypothesis, uem=Timeline([Segment(0, duration)])))


def incremental(audio: Samples) -> tuple[Annotation, float, float]:
    diarizer = IncrementalDiarizer(load_segmentation(), CamPlusPlus())
    stop = threading.Event()
    start = time.perf_counter()
    for offset in range(0, audio.size, SAMPLE_RATE):
        diarizer.push(audio[offset : offset + SAMPLE_RATE])
        for _ in diarizer.run(False, stop):
            pass
    last_chunk = time.perf_counter()
    for _ in diarizer.run(True, stop):
        pass
    result = diarizer.finish()
    end = time.perf_counter()
    return result.turns, end - start, end - last_chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    audio, reference = meeting(args.data)
    duration = audio.size / SAMPLE_RATE
    print(f"input: {duration:.0f} s", flush=True)
    turns, total, tail = incremental(audio)
    print(f"incremental: {total:.1f} s (tail {tail:.2f} s)", flush=True)
    start = time.perf_counter()
    stock = diarize_whole(stock_pipeline(), audio).speaker_diarization
    stock_total = time.perf_counter() - start
    print(f"stock: {stock_total:.1f} s", flush=True)
    rows: list[tuple[str, Any, float, str]] = [
        ("pyannote whole-file pipeline (stock)", stock, stock_total, "-"),
        ("whospoke incremental diarizer", turns, total, f"{tail:.2f}"),
    ]
    lines = [
        "Command: `python bench/diarizer_bench.py` (one run each).",
        f"Machine: {machine()}; torch threads {args.threads}.",
        "Models: pyannote segmentation-3.0 + CAM++ (embedded), agglomerative clustering "
        "(centroid, threshold 0.6, min cluster size 12), 10 s windows every 1 s.",
        f"Input: the ten clips of `shared/data/diarization-dev` joined: {duration:.0f} s, "
        f"{len(reference.labels())} speakers.",
        "",
        "| path | wall time (s) | real-time factor | last chunk to result (s) | DER collar 0 "
        "| DER collar 0.25 s |",
        "|---|---|---|---|---|---|",
    ]
    for label, hypothesis, seconds, tail_text in rows:
        lines.append(
            f"| {label} | {seconds:.1f} | {seconds / duration:.3f} | {tail_text} | "
            f"{der(reference, hypothesis, duration, 0.0):.3f} | "
            f"{der(reference, hypothesis, duration, 0.25):.3f} |"
        )
    write_section("Diarizer", "\n".join(lines))
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
