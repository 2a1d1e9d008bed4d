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
