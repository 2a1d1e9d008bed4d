"""A job's decoded audio on disk: decoded once, then read by each backend at its own pace.

Held in memory, decoded audio costs 230 MB per hour as float32, so a four-hour
recording alone would take about a gigabyte of the orchestrator's memory. A spool
file (16 kHz mono 16-bit PCM, 115 MB per hour) keeps memory flat in the
recording's length: each backend call reads its next chunk from the file when
gRPC flow control asks for it, so neither backend waits for the other and no
chunk is held longer than it takes to send. Decoding runs in a worker thread,
stops at the duration limit, and stops when its job is cancelled before the
job's slot is freed.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import secrets
import shutil
import socket
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from whospoke.common.audio import SAMPLE_RATE
from whospoke.common.decode import PcmDecoder, Source
from whospoke.common.errors import Cancelled, ResourceExhausted
from whospoke.common.threads import run_stoppable
from whospoke.v1 import audio_pb2

BYTES_PER_SAMPLE = 2


@dataclass(frozen=True)
class SpooledAudio:
    """Decoded audio in a file; `chunks` may be iterated by several readers at once."""

    path: Path
    samples: int

    @property
    def duration_seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    @property
    def expected_seconds(self) -> float:
        return self.duration_seconds

    async def chunks(self, chunk_seconds: float) -> AsyncIterator[audio_pb2.AudioChunk]:
        """Contiguous chunks of `chunk_seconds`, each read from disk when asked for."""
        size = max(1, round(chunk_seconds * SAMPLE_RATE))
        for offset in range(0, self.samples, size):
            count = min(size, self.samples - offset)
            data = await asyncio.to_thread(read_samples, self.path, offset, count)
            yield audio_pb2.AudioChunk(pcm_s16le=data, offset_samples=offset)

    async def remove(self) -> None:
        await asyncio.to_thread(self.path.unlink, missing_ok=True)


@dataclass
class DecodeProgress:
    """How far a decode has come: written by its worker thread, read by the event loop.

    Each field changes by a single attribute store, which the interpreter makes
    atomic, so a reader needs no lock and sees values at most one block old; the
    loop polls it (`percent`) at its own pace instead of being called back from
    the decoding thread once per block.
    """

    declared_seconds: float = 0.0
    """What the container's header declares (0 when nothing): an estimate, never a limit."""
    decoded_seconds: float = 0.0
    done: bool = False

    @property
    def percent(self) -> float:
        """Decoded against declared duration; below 100 until decoding has ended (a
        header may understate), 0 while nothing is declared, 100 once done."""
        if self.done:
            return 100.0
        if self.declared_seconds <= 0:
            return 0.0
        return min(99.9, 100.0 * self.decoded_seconds / self.declared_seconds)


async def spool(
    source: Callable[[], Source],
    directory: Path,
    max_seconds: float,
    progress: DecodeProgress | None = None,
) -> SpooledAudio:
    """Decode `source()` (called in the worker thread) into a new file in `directory`.

    Raises InvalidArgument as soon as the audio passes `max_seconds`, and
    FileNotFoundError only when the source file disappeared (a failure to write
    the spool is the server's, never reported as a missing input); no file is
    left behind on any failure or cancellation. `progress`, when given, follows
    the decode as it runs and is marked done once it has succeeded.
    """
    path = directory / f"{secrets.token_hex(8)}.pcm"
    tracked = progress if progress is not None else DecodeProgress()
    samples = await run_stoppable(partial(_write, source, path, max_seconds, tracked))
    tracked.decoded_seconds, tracked.done = samples / SAMPLE_RATE, True
    return SpooledAudio(path, samples)


LOCK = ".lock"
_claims: list[BinaryIO] = []
"""Lock files of this process's spool directories, open (and locked) for its whole life:
the OS releases the locks when it exits, however it exits."""


def own_directory(root: Path) -> Path:
    """This process's spool directory under `root`: several orchestrators may share one
    uploads directory (replicas on one host or on a shared volume, a restart overlapping
    the old process's drain), so none may touch another's files."""
    return root / f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def claim(directory: Path) -> None:
    """Create and lock this process's spool directory, then remove what dead processes
    left beside it: a sibling whose lock can be taken has no live owner. Top-level files
    are an older version's, which put every process's files in one directory."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = (directory / LOCK).open("wb")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _claims.append(lock)
    for sibling in directory.parent.iterdir():
        if sibling == directory:
            continue
        if sibling.is_dir():
            _remove_if_abandoned(sibling)
        elif sibling.suffix in (".pcm", ".src"):
            sibling.unlink(missing_ok=True)


def _remove_if_abandoned(directory: Path) -> None:
    try:
        with (directory / LOCK).open("ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(directory, ignore_errors=True)
    except BlockingIOError:
        return  # its owner runs
    except FileNotFoundError:
        shutil.rmtree(directory, ignore_errors=True)  # half-created, or removed meanwhile


def _write(
    source: Callable[[], Source],
    path: Path,
    max_seconds: float,
    progress: DecodeProgress,
    stop: threading.Event,
) -> int:
    decoder = PcmDecoder(source(), max_seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("wb") as out:
            for block in decoder:
                if stop.is_set():
                    raise Cancelled("the job was cancelled while decoding")
                write_block(out, block)
                progress.declared_seconds = decoder.declared_seconds
                progress.decoded_seconds = decoder.decoded_seconds
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return decoder.samples


def write_block(out: BinaryIO, block: bytes) -> None:
    try:
        out.write(block)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ResourceExhausted("no disk space left for decoded audio; retry later") from None
        raise RuntimeError(f"cannot write the spool file: {exc.strerror}") from None


def read_samples(path: Path, offset: int, count: int) -> bytes:
    with path.open("rb") as file:
        file.seek(offset * BYTES_PER_SAMPLE)
        return file.read(count * BYTES_PER_SAMPLE)
