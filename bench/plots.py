"""PNG figures for BENCHMARKS.md (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def progress_plot(
    timeline: Sequence[tuple[float, float, float]], first_segment: float, path: Path
) -> None:
    """Transcription and diarization percent over wall time for one `Process` call."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(7, 3.5))
    times = [t for t, _, _ in timeline]
    axes.plot(times, [p for _, p, _ in timeline], label="transcription")
    axes.plot(times, [p for _, _, p in timeline], label="diarization")
    if first_segment:
        axes.axvline(first_segment, color="grey", linestyle=":", label="first segment")
    axes.set_xlabel("seconds since the call")
    axes.set_ylabel("percent of the audio")
    axes.set_ylim(0, 105)
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def rss_plot(points: Sequence[tuple[float, dict[str, float]]], path: Path) -> None:
    """Peak RSS of each service against the minutes of audio processed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(7, 3.5))
    for service in ("transcriber", "diarizer", "orchestrator"):
        axes.plot(
            [m for m, _ in points], [r[service] for _, r in points], marker="o", label=service
        )
    axes.set_xlabel("minutes of audio in one Process call")
    axes.set_ylabel("peak RSS (MiB)")
    axes.set_ylim(bottom=0)
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def completion_plot(runs: dict[str, list[list[float]]], path: Path) -> None:
    """Mean time until the n-th result per path (`runs`: each pass's result times)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(7, 3.5))
    for label, passes in runs.items():
        if passes:
            ordered = [sorted(times) for times in passes]
            mean = [sum(times) / len(ordered) for times in zip(*ordered, strict=True)]
            axes.step([0.0, *mean], range(len(mean) + 1), where="post", label=label)
    axes.set(xlabel="seconds since the pass started (mean of its passes)", ylabel="results")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
