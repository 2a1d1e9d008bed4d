"""PNG figures for BENCHMARKS.md (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@contextmanager
def _figure(path: Path, legend: Literal["best", "lower right"] = "best") -> Iterator[Any]:
    """The axes of one 7 by 3.5 inch figure; on leaving: legend, grid, saved to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(7, 3.5))
    try:
        yield axes
        axes.legend(loc=legend)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)


def progress_plot(
    timeline: Sequence[tuple[float, float, float]], first_segment: float, path: Path
) -> None:
    """Transcription and diarization percent over wall time for one `Process` call."""
    with _figure(path, "lower right") as axes:
        times = [t for t, _, _ in timeline]
        axes.plot(times, [p for _, p, _ in timeline], label="transcription")
        axes.plot(times, [p for _, _, p in timeline], label="diarization")
        if first_segment:
            axes.axvline(first_segment, color="grey", linestyle=":", label="first segment")
        axes.set(xlabel="seconds since the call", ylabel="percent of the audio")
        axes.set_ylim(0, 105)


def rss_plot(points: Sequence[tuple[float, dict[str, float]]], path: Path) -> None:
    """Peak RSS of each service (the keys of `points`' dicts) against the minutes of audio
    processed."""
    with _figure(path) as axes:
        for service in points[0][1] if points else ():
            axes.plot(
                [m for m, _ in points], [r[service] for _, r in points], marker="o", label=service
            )
        axes.set(xlabel="minutes of audio in one Process call", ylabel="peak RSS (MiB)")
        axes.set_ylim(bottom=0)


def completion_plot(runs: dict[str, list[list[float]]], path: Path) -> None:
    """Mean time until the n-th result per path (`runs`: each pass's result times)."""
    with _figure(path, "lower right") as axes:
        for label, passes in runs.items():
            if passes:
                ordered = [sorted(times) for times in passes]
                mean = [sum(times) / len(ordered) for times in zip(*ordered, strict=True)]
                axes.step([0.0, *mean], range(len(mean) + 1), where="post", label=label)
        axes.set(xlabel="seconds since the pass started (mean of its passes)", ylabel="results")


def latency_plot(latencies: dict[str, Sequence[float]], title: str, path: Path) -> None:
    """The distribution (empirical CDF) of request latencies, one line per path."""
    with _figure(path, "lower right") as axes:
        for label, values in latencies.items():
            if values:
                ordered = sorted(values)
                shares = [(i + 1) / len(ordered) for i in range(len(ordered))]
                axes.step(ordered, shares, where="post", label=label)
        axes.set(xlabel="latency (s)", ylabel="share of requests", title=title)
        axes.set_ylim(0, 1.02)
