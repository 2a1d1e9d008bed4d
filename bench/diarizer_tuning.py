"""Tune the diarizer's clustering: linkage, threshold, minimum cluster size, window step.

Thresholds are swept for both linkages at the default minimum cluster size (scaled
to the window step), then minimum cluster sizes at the default linkage and threshold.

Scores every setting by DER (overlap included, collar 0 and 0.25 s) over the ten
30 s clips of `../shared/data/diarization-dev` diarized one by one, over the
same clips joined into one 5-minute recording (21 speakers), on sample.wav and
on the Asterisk conversation (two studio voices that CAM++ places close together:
the far-field meeting clips favour a high threshold, these voices a low one).
Window inference runs once per step; only clustering is repeated per setting.
pyannote's stock whole-file pipeline (per-window CAM++, threshold 0.6) is the
reference row.

Then the margin by which a pause-separated run of a window's speaker must be closer
to another speaker to move there (`diarizer.runs`), at the default clustering; its own
section, which `--runs-only` measures alone.

Usage: .venv/bin/python bench/diarizer_tuning.py [--data DIR] [--threads 2] [--runs-only]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from pyannote.core import Annotation, Segment, Timeline

from bench.diarizer_bench import DEFAULT_DATA, recording
from bench.inputs import clips, conversation, joined
from bench.outcome import der_metric
from bench.report import machine, write_section
from diarizer.baseline import diarize_whole, stock_pipeline
from diarizer.embedders import PooledEmbedder
from diarizer.incremental import ClusteringSettings, IncrementalDiarizer
from diarizer.models import CamPlusPlus, load_segmentation
from whospoke.common.audio import SAMPLE_RATE, Samples

THRESHOLDS = {
    "average": (0.3, 0.35, 0.36, 0.37, 0.39, 0.41, 0.42, 0.45, 0.5),
    "centroid": (0.5, 0.55, 0.6, 0.65, 0.68, 0.7, 0.72, 0.75, 0.78, 0.8),
}
"""Cosine distance thresholds per linkage (centroid linkage measures unit vectors' means)."""
SIZES = (4, 6, 7, 8, 9, 10, 12, 15)
"""Minimum cluster sizes (in 1 s windows) swept at the default linkage and threshold."""
STEPS = (1.0, 2.0)
RUN_MARGINS = (0.0, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 2.0)
"""Speech-run margins (`diarizer.runs`) swept at the default clustering; 2: runs never move."""
Scored = list[tuple[Annotation, Annotation, float]]


def total_der(items: Scored, collar: float) -> float:
    """DER over several recordings: total error over total reference speech."""
    metric = der_metric(collar)
    for reference, hypothesis, duration in items:
        metric(reference, hypothesis, uem=Timeline([Segment(0, duration)]))
    return float(abs(metric))


def analysed(
    models: tuple[object, CamPlusPlus], audio: Samples, step: float
) -> IncrementalDiarizer:
    segmentation, embedding = models
    diarizer = IncrementalDiarizer(
        segmentation,  # type: ignore[arg-type]
        PooledEmbedder(embedding),
        step_seconds=step,
    )
    diarizer.push(audio)
    for _ in diarizer.run(True, threading.Event()):
        pass
    return diarizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-only", action="store_true", help="sweep the run margin only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recordings = clips(args.data)
    talk = conversation()
    sets = [
        recordings,
        [joined(recordings)],
        [recording("sample", args.data)],
        [(talk.audio, talk.reference)],
    ]
    models = (load_segmentation(), CamPlusPlus())
    analyses = [[(analysed(models, a, 1.0), ref, seconds(a)) for a, ref in g] for g in sets]
    run_margins(analyses, args.threads)
    if not args.runs_only:
        clustering(sets, models, args.threads)


def clustering(
    sets: list[list[tuple[Samples, Annotation]]], models: tuple[object, CamPlusPlus], threads: int
) -> None:
    stock = stock_pipeline()
    rows = [
        _row(
            "stock whole-file pipeline (per-window CAM++)",
            "1 / 0.6 / 12",
            [
                [(ref, diarize_whole(stock, a).speaker_diarization, seconds(a)) for a, ref in group]
                for group in sets
            ],
        )
    ]
    print(rows[-1], flush=True)
    for step in STEPS:
        analyses = [[(analysed(models, a, step), ref, seconds(a)) for a, ref in g] for g in sets]
        for setting in swept(step):
            scored = [
                [(ref, d.finish(settings=setting).turns, length) for d, ref, length in group]
                for group in analyses
            ]
            label = f"whospoke pooled CAM++, {setting.method} linkage"
            size = f"{step:g} / {setting.threshold:g} / {setting.min_cluster_size}"
            rows.append(_row(label, size, scored))
            print(rows[-1], flush=True)
    lines = [
        "Command: `python bench/diarizer_tuning.py`.",
        f"Machine: {machine()}; torch threads {threads}.",
        f"{SETS}; in brackets, the speakers found in a single recording.",
        "",
        "| embeddings | step (s) / threshold / min cluster size | clips DER | joined DER "
        "| sample.wav DER | conversation DER |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    write_section("Diarizer clustering tuning", "\n".join(lines))


def run_margins(
    analyses: list[list[tuple[IncrementalDiarizer, Annotation, float]]], threads: int
) -> None:
    """The run margin swept at the default clustering, from the same window analyses."""
    rows = []
    for margin in RUN_MARGINS:
        setting = ClusteringSettings(run_margin=margin)
        scored = [
            [(ref, d.finish(settings=setting).turns, length) for d, ref, length in group]
            for group in analyses
        ]
        rows.append(_row("whospoke pooled CAM++, average linkage 0.39 / 8", f"{margin:g}", scored))
        print(rows[-1], flush=True)
    lines = [
        "Command: `python bench/diarizer_tuning.py --runs-only` (also part of the full run).",
        f"Machine: {machine()}; torch threads {threads}.",
        f"{SETS}. Margin: how much closer (cosine similarity) a pause-separated run of a "
        "window's local speaker must be to another speaker's centroid to move there "
        "(`diarizer/runs.py`); 2: runs never move (the clustering alone).",
        "",
        "| embeddings | run margin | clips DER | joined DER | sample.wav DER | conversation DER |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    write_section("Diarizer speech runs", "\n".join(lines))


SETS = (
    "DER (overlap scored, collar 0 / 0.25 s) over the ten dev clips diarized one by one, "
    "over the same clips joined into one 5-minute recording (21 speakers), on `sample.wav` "
    "(2 speakers) and on the Asterisk conversation (6 min, en/fr/es prompts, 2 voices)"
)


def swept(step: float) -> list[ClusteringSettings]:
    """Every threshold of both linkages at the default minimum cluster size (scaled to the
    step), then, at a 1 s step, every minimum cluster size at the default threshold."""
    default = ClusteringSettings()
    size = round(default.min_cluster_size / step)
    settings = [
        ClusteringSettings(threshold, method, min_cluster_size=size)
        for method, thresholds in THRESHOLDS.items()
        for threshold in thresholds
    ]
    if step == 1.0:
        settings += [
            ClusteringSettings(default.threshold, default.method, min_cluster_size=n)
            for n in SIZES
            if n != default.min_cluster_size
        ]
    return settings


def seconds(audio: Samples) -> float:
    return audio.size / SAMPLE_RATE


def _row(label: str, setting: str, groups: list[Scored]) -> str:
    """DER cells; for a single recording also the number of speakers found."""
    cells = " | ".join(
        f"{100 * total_der(g, 0.0):.1f} / {100 * total_der(g, 0.25):.1f} %"
        + (f" ({len(g[0][1].labels())})" if len(g) == 1 else "")
        for g in groups
    )
    return f"| {label} | {setting} | {cells} |"


if __name__ == "__main__":
    main()
