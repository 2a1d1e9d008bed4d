"""Machine facts and the BENCHMARKS.md section writer shared by the benchmark scripts."""

from __future__ import annotations

import os
import platform
import re
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nWritten by the scripts in `bench/`; rerun them to refresh a section.\n"


def machine() -> str:
    """One line naming the CPU, cores and the versions that matter."""
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = match.group(1).strip() if match else cpu
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("faster-whisper", "ctranslate2", "grpcio")
    )
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {packages}"


def write_section(name: str, body: str, quick: bool = False) -> None:
    """Replace (or append) the section `## name` of BENCHMARKS.md.

    Quick runs write to BENCHMARKS.quick.md instead, leaving the full figures alone.
    """
    target = BENCHMARKS.with_suffix(".quick.md") if quick else BENCHMARKS
    text = target.read_text() if target.exists() else HEADER
    section = f"## {name}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    target.write_text(text)


def family(pid: int) -> list[int]:
    """`pid` and its descendants."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += family(int(child))
    return found


def peak_kib(pid: int) -> int:
    """VmHWM of `pid`: its peak resident set."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1])
