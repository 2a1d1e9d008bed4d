"""The gateway benchmark's findings and the BENCHMARKS.md section they make
(`bench/gateway_bench.py` measures them)."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.plots import latency_plot
from bench.report import ROOT, machine, write_section

FIGURES = ROOT / "bench" / "figures"
OUT = ROOT / "bench" / "out"  # where --quick draws (ignored by git), sparing the full figure
TARGET = 1.03
"""The gateway's goal: at most 3 % more wall time than `whospoke process`."""
PATHS = ("http", "cli", "grpc")
LABELS = {
    "http": "HTTP `POST /v1/audio/transcriptions`",
    "cli": "`whospoke process --format json` (a subprocess)",
    "grpc": "gRPC `Process` from the benchmark's process",
}
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}
"""Student's t, two-sided 95 %, by degrees of freedom (1.96 beyond)."""

Segments = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Reply:
    """One transcription: its wall time at the client, its text and (speaker, text) segments."""

    path: str
    seconds: float
    text: str
    segments: Segments
    cpu: float = 0.0
    """The gateway's CPU seconds during the call (when calls ran one at a time)."""


@dataclass(frozen=True)
class Audio:
    """A file sent by every path: its bytes, and on disk for the CLI."""

    name: str
    data: bytes
    seconds: float
    file: Path


@dataclass(frozen=True)
class Load:
    """One pass of closed-loop clients: each request's latency, and the pass's wall time."""

    path: str
    clients: int
    latencies: list[float]
    wall: float
    cpu: float
    """The gateway's CPU seconds during the pass."""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall


@dataclass
class Found:
    """Everything one run measured."""

    rounds: list[dict[str, Reply]]
    loads: list[Load]
    refused: dict[str, float]


def _ci(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    half = T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5
    mean = statistics.mean(values)
    return mean - half, mean + half


def verdict(ratios: list[float]) -> str:
    low, high = _ci(ratios)
    mean = statistics.mean(ratios)
    interval = f"95 % CI {low:.3f}-{high:.3f}" if len(ratios) > 1 else "one round, no CI"
    if len(ratios) > 1 and high <= TARGET:
        judged = "**meets** the target: the whole interval is at or below 1.03"
    elif len(ratios) > 1 and low > TARGET:
        judged = "**misses** the target: the whole interval is above 1.03"
    elif mean <= TARGET:
        judged = "within the target on the mean; the rounds' spread cannot exclude more"
    else:
        judged = "above the target on the mean; the rounds' spread cannot confirm it"
    return (
        f"HTTP / CLI wall time per round: mean **{mean:.3f}** ({interval}; rounds "
        f"{', '.join(f'{r:.3f}' for r in ratios)}); target at most 1.03 (+3 %): {judged}."
    )


def overhead_lines(audio: Audio, rounds: list[dict[str, Reply]]) -> list[str]:
    lines = [
        f"### Overhead on one file ({audio.name}, {audio.seconds:.0f} s, "
        f"{len(audio.data) / 1e6:.1f} MB WAV, sent inline)",
        "",
        "| path | calls | wall time (s), mean (range) | vs `whospoke process` |",
        "|---|---|---|---|",
    ]
    cli = statistics.mean(r["cli"].seconds for r in rounds)
    for path in PATHS:
        times = [r[path].seconds for r in rounds]
        mean = statistics.mean(times)
        lines.append(
            f"| {LABELS[path]} | {len(times)} | {mean:.2f} ({min(times):.2f}-{max(times):.2f}) "
            f"| {mean / cli:.3f} |"
        )
    replies = [reply for r in rounds for reply in r.values()]
    same_text = len({reply.text for reply in replies}) == 1
    same_segments = len({reply.segments for reply in replies}) == 1
    order = ", ".join(f"{p} {r[p].seconds:.2f}" for r in rounds for p in r)
    return [
        *lines,
        "",
        verdict([r["http"].seconds / r["cli"].seconds for r in rounds]),
        "",
        f"Same transcript in all {len(replies)} calls: text "
        f"{'identical' if same_text else '**differs**'}, speaker-labelled segments "
        f"{'identical' if same_segments else '**differ**'} "
        f"({len(replies[0].segments)} segments). Calls in the order run (s): {order}. "
        "The CLI's time includes starting its Python process; the gRPC row is the floor "
        "both paths build on.",
    ]


def _quantile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def load_lines(audio: Audio, loads: list[Load], figure: Path) -> list[str]:
    lines = [
        f"### Requests per second ({audio.name}, {audio.seconds:.0f} s, "
        "closed-loop clients, diarized)",
        "",
        "| clients | path | passes | requests | req/s, mean (range) | latency p50 (s) "
        "| latency p95 (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    rates: dict[tuple[int, str], float] = {}
    for count in sorted({x.clients for x in loads}):
        for path in ("grpc", "http"):
            runs = [x for x in loads if (x.clients, x.path) == (count, path)]
            every = [s for x in runs for s in x.latencies]
            per = [x.rate for x in runs]
            rates[count, path] = statistics.mean(per)
            lines.append(
                f"| {count} | {'HTTP' if path == 'http' else 'gRPC'} | {len(runs)} "
                f"| {len(every)} | {rates[count, path]:.2f} ({min(per):.2f}-{max(per):.2f}) "
                f"| {_quantile(every, 50):.2f} | {_quantile(every, 95):.2f} |"
            )
    ratios = ", ".join(
        f"{c} {'client' if c == 1 else 'clients'} **{rates[c, 'http'] / rates[c, 'grpc']:.3f}**"
        for c in sorted({c for c, _ in rates})
    )
    return [
        *lines,
        "",
        f"HTTP / gRPC requests per second: {ratios}. The orchestrator runs one job at a "
        "time, so at 8 clients seven wait in its queue and latency is mostly that wait.",
        "",
        f"![gateway latency]({figure.relative_to(ROOT)})",
    ]


def _difference(values: list[float]) -> str:
    low, high = _ci(values)
    mean = 1000 * statistics.mean(values)
    return f"{mean:+.0f} ms (95 % CI {1000 * low:+.0f} to {1000 * high:+.0f}, n={len(values)})"


def where_lines(found: Found, short: Audio, long: Audio) -> list[str]:
    """Per request: a refused POST, the paired HTTP - gRPC latency, the gateway's CPU."""
    one = {
        p: next(x for x in found.loads if (x.clients, x.path) == (1, p)) for p in ("http", "grpc")
    }
    eight = {p: [x for x in found.loads if (x.clients, x.path) == (8, p)] for p in ("http", "grpc")}
    paired = [h - g for h, g in zip(one["http"].latencies, one["grpc"].latencies, strict=True)]
    rounds = found.rounds

    def cpu(runs: list[Load]) -> str:
        return f"{1000 * sum(x.cpu for x in runs) / sum(len(x.latencies) for x in runs):.1f}"

    def per_call(path: str) -> str:
        return f"{1000 * statistics.mean(r[path].cpu for r in rounds):.1f}"

    return [
        "### Where the gateway's time goes (per request)",
        "",
        "| file, clients | refused POST (ms) | HTTP - gRPC latency, paired "
        "| gateway CPU per HTTP request (ms) | gateway CPU per gRPC request: idle (ms) |",
        "|---|---|---|---|---|",
        f"| {short.name}, 1 | {1000 * found.refused[short.name]:.1f} | {_difference(paired)} "
        f"| {cpu([one['http']])} | {cpu([one['grpc']])} |",
        f"| {short.name}, 8 | - | - | {cpu(eight['http'])} | {cpu(eight['grpc'])} |",
        f"| {long.name}, 1 | {1000 * found.refused[long.name]:.1f} "
        f"| {_difference([r['http'].seconds - r['grpc'].seconds for r in rounds])} "
        f"| {per_call('http')} | {per_call('grpc')} |",
        "",
        "Refused POST: a bad `response_format`, answered 400 after the whole body was read "
        "(upload and multipart parsing; no orchestrator call), mean of 5. Paired: the "
        "one-client requests alternate gRPC and HTTP, the long file's are the rounds above. "
        "Gateway CPU: its process's user + system time (/proc) over the calls; while the "
        "gRPC path runs the gateway is idle, so that column is its background cost.",
    ]


def write_report(
    args: argparse.Namespace, found: Found, long: Audio, short: Audio, minutes: float
) -> None:
    figure = (OUT if args.quick else FIGURES) / "gateway_latency.png"
    at8 = [x for x in found.loads if x.clients == 8]
    latency_plot(
        {
            "HTTP (gateway)": [s for x in at8 if x.path == "http" for s in x.latencies],
            "gRPC Process": [s for x in at8 if x.path == "grpc" for s in x.latencies],
        },
        f"{short.name}, 8 closed-loop clients",
        figure,
    )
    command = "python bench/gateway_bench.py" + (" --quick" if args.quick else "")
    lines = [
        f"Command: `{command}` ({minutes:.0f} min in all).",
        f"Machine: {machine()}; {args.threads} threads for each model; the gateway, the CLI "
        "and the benchmark's clients share the same cores.",
        "Services, each a subprocess: transcriber (Whisper base int8), diarizer "
        "(segmentation-3.0 + CAM++), orchestrator with its defaults (one job at a time, up to "
        "16 waiting) and the gateway in front of it. HTTP: httpx2, multipart, `model=whisper-1`, "
        "`response_format=diarized_json` (diarization on, as `whospoke process` by default).",
        "",
        *overhead_lines(long, found.rounds),
        "",
        *load_lines(short, found.loads, figure),
        "",
        *where_lines(found, short, long),
    ]
    write_section("HTTP gateway", "\n".join(lines), quick=args.quick)
    print("\n".join(lines), flush=True)
