"""Each Dockerfile target holds what its service needs, and nothing of the others.

No container engine runs here, so each target is checked the way its image is
built: a wheel is built from exactly the paths the target copies, installed in a
scratch environment, and each console script of that target runs `--help` from
it. The orchestrator's environment gets its real dependencies from the base
install (no model stack); the model services borrow their heavy dependencies
from the development environment and install only the wheel.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"transcriber", "diarizer", "orchestrator", "gateway"}
LIGHT = {"orchestrator", "gateway"}
"""Images without a model stack: nothing of torch, faster-whisper or pyannote may load."""


@dataclass
class Target:
    name: str
    base: str
    copies: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    command: str = ""


def targets() -> dict[str, Target]:
    """The stages of the Dockerfile, with what each copies (its base's copies included)."""
    stages: dict[str, Target] = {}
    current: Target | None = None
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if match := re.match(r"FROM (\S+) AS (\S+)", line):
            current = Target(match[2], match[1])
            if match[1] in stages:
                current.copies = list(stages[match[1]].copies)
            stages[current.name] = current
        elif current is not None and line.startswith("COPY "):
            current.copies += line.split()[1:-1]
        elif current is not None:
            current.extras += re.findall(r'"\.\[(\w+)\]"', line)
            if match := re.match(r'CMD \["([\w-]+)"', line):
                current.command = match[1]
    return {name: t for name, t in stages.items() if t.command}


def build_wheel(target: Target, work: Path) -> Path:
    staging = work / "context"
    for path in target.copies:
        source = ROOT / path
        if source.is_dir():
            shutil.copytree(source, staging / path, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            staging.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, staging / path)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip, "-w", str(work / "dist"), str(staging)], check=True, timeout=300)
    return next((work / "dist").glob("*.whl"))


def scratch_environment(work: Path, borrow: bool) -> Path:
    """A new virtual environment; with `borrow`, the dev environment's packages behind it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(work / "env")], check=True)
    python = work / "env" / "bin" / "python"
    if borrow:
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        (Path(site) / "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


def install(python: Path, wheel: Path, with_dependencies: bool) -> None:
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    command += ["-c", str(ROOT / "requirements.lock")] if with_dependencies else ["--no-deps"]
    done = subprocess.run([*command, str(wheel)], capture_output=True, text=True, timeout=600)
    if done.returncode and with_dependencies and "Could not fetch" in done.stderr + done.stdout:
        pytest.skip("the package index cannot be reached to install the base dependencies")
    assert done.returncode == 0, done.stderr


IMAGES = sorted({name.removesuffix("-cpu").removesuffix("-gpu") for name in targets()})


@pytest.mark.e2e
@pytest.mark.parametrize("image", IMAGES)
def test_each_target_runs_its_console_scripts_from_its_own_files(
    image: str, tmp_path: Path
) -> None:
    flavours = [t for name, t in targets().items() if name.startswith(image)]
    assert len({(tuple(t.copies), tuple(t.extras)) for t in flavours}) == 1, "flavours differ"
    target = flavours[0]
    wheel = build_wheel(target, tmp_path)
    packages = {Path(n).parts[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert image in packages and "whospoke" in packages
    assert not packages & (SERVICES - {image}), "a target ships another service's code"
    python = scratch_environment(tmp_path, borrow=image != "orchestrator")
    install(python, wheel, with_dependencies=image == "orchestrator")
    scripts = [target.command] + (["whospoke"] if image == "orchestrator" else [])
    for script in scripts:
        done = subprocess.run(
            [str(python.parent / script), "--help"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert "usage:" in done.stdout
    if image in LIGHT:
        loaded = subprocess.run(
            [str(python), "-c", f"import sys, {image}.__main__; print(*sys.modules)"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=True,
        ).stdout.split()
        assert not {"torch", "faster_whisper", "pyannote"} & {m.split(".")[0] for m in loaded}


def test_compose_uses_only_targets_and_commands_that_exist() -> None:
    stages = targets()
    scripts = {t.command for t in stages.values()}
    for name in ("docker-compose.yml", "docker-compose.cpu.yml"):
        text = (ROOT / name).read_text().replace("!reset", "")
        for service, spec in yaml.safe_load(text)["services"].items():
            if service not in SERVICES:
                continue  # third-party images (Prometheus, Grafana)
            if "build" in spec:
                assert spec["build"]["target"] in stages, (name, service)
                assert stages[spec["build"]["target"]].command.endswith(service)
            if "command" in spec:
                assert spec["command"][0] in scripts, (name, service)
