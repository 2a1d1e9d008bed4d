"""Uploaded recordings on disk: random ids, quotas, a duration probe and a time-to-live.

An upload is written to a temporary file while it streams in and renamed into
place once complete and probed (so a half-written or undecodable file is never
visible). The probe decodes the whole file, bounded by the duration limit:
a header can claim 0 samples and hold ten hours. Disk is bounded by quotas on
uploads in progress (for the server and per client) and on bytes held (per
upload, per client, in all); expired uploads are deleted by a periodic sweep and
never served. Every blocking step runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from orchestrator.ids import ID_PATTERN, new_id
from orchestrator.quotas import UploadLimits, UploadUsage
from whospoke.common.decode import measure
from whospoke.common.errors import InvalidArgument, NotFound, quoted
from whospoke.common.threads import run_stoppable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadInfo:
    upload_id: str
    size_bytes: int
    duration_seconds: float
    format: str
    filename: str
    expires_at: float
    """Unix time after which the upload is deleted."""
    client: str = ""
    """Who uploaded it (a token digest or a peer address), for per-client quotas."""


class UploadStore:
    def __init__(self, directory: Path, limits: UploadLimits) -> None:
        self.directory = directory
        self.limits = limits
        self.usage = UploadUsage(limits)
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def max_bytes(self) -> int:
        return self.limits.max_bytes

    def load(self) -> None:
        """Delete what expired while the server was down; count the rest against the quotas."""
        self.sweep()
        for meta in self.directory.glob("*.json"):
            info = self._read(meta)
            if info is not None:
                self.usage.stored(info.upload_id, info.client, info.size_bytes)

    async def save(self, chunks: AsyncIterator[tuple[bytes, str]], client: str) -> UploadInfo:
        """Store (data, filename) chunks; the first non-empty filename is kept."""
        ticket = self.usage.begin(client)
        upload_id = new_id()
        partial_path = self.directory / f".{upload_id}.part"
        try:
            out = await asyncio.to_thread(partial_path.open, "wb")
            try:
                filename = await self._receive(chunks, out, ticket)
            finally:
                await asyncio.to_thread(out.close)
            if ticket.bytes == 0:
                raise InvalidArgument("upload: no data received")
            duration, container = await run_stoppable(partial(self._probe, partial_path))
            info = UploadInfo(
                upload_id,
                ticket.bytes,
                duration,
                container,
                _clean_name(filename),
                time.time() + self.limits.ttl_seconds,
                client,
            )
            await asyncio.to_thread(self._publish, info, partial_path)
        except BaseException:
            ticket.abort()
            await asyncio.to_thread(partial_path.unlink, missing_ok=True)
            raise
        ticket.finish(upload_id)
        logger.info("stored upload %s (%d bytes, %.1f s)", upload_id, info.size_bytes, duration)
        return info

    async def _receive(
        self, chunks: AsyncIterator[tuple[bytes, str]], out: BinaryIO, ticket: UploadUsage.Ticket
    ) -> str:
        filename = ""
        async for data, name in chunks:
            filename = filename or name
            ticket.grow(len(data))
            await asyncio.to_thread(out.write, data)
        return filename

    def _probe(self, path: Path, stop: threading.Event) -> tuple[float, str]:
        return measure(path, self.limits.max_audio_seconds, "upload", stop)

    def _publish(self, info: UploadInfo, partial_path: Path) -> None:
        """The details appear whole (written aside, then renamed): another replica sweeping a
        shared directory as it starts must never read them half-written and delete the
        upload. A crash leaves only `.part` files, which the sweep removes once stale."""
        meta = self._meta(info.upload_id)
        written = meta.with_name(f".{meta.name}.part")
        written.write_text(json.dumps(asdict(info)))
        os.replace(written, meta)
        partial_path.rename(self._data(info.upload_id))

    def info(self, upload_id: str) -> UploadInfo:
        """The upload's details; NOT_FOUND once expired or deleted. Blocking."""
        info = self._read(self._meta(self._checked(upload_id)))
        if info is None:
            raise NotFound(f"upload_id: no upload {quoted(upload_id)} (expired or deleted)")
        if info.expires_at <= time.time() or not self._data(upload_id).exists():
            self.delete(upload_id, missing_ok=True)
            raise NotFound(f"upload_id: no upload {quoted(upload_id)} (expired or deleted)")
        return info

    def path(self, upload_id: str) -> Path:
        """The stored file, after checking the upload exists and has not expired. Blocking."""
        self.info(upload_id)
        return self._data(upload_id)

    def delete(self, upload_id: str, missing_ok: bool = False) -> None:
        """Remove the upload's files. Blocking."""
        self._checked(upload_id)
        found = self._meta(upload_id).exists()
        self._data(upload_id).unlink(missing_ok=True)
        self._meta(upload_id).unlink(missing_ok=True)
        self.usage.forget(upload_id)
        if not found and not missing_ok:
            raise NotFound(f"upload_id: no upload {quoted(upload_id)} (expired or deleted)")

    def sweep(self) -> int:
        """Delete expired uploads and stale partial files; returns how many went. Blocking."""
        removed, now = 0, time.time()
        for meta in self.directory.glob("*.json"):
            if not ID_PATTERN.fullmatch(meta.stem):
                continue
            info = self._read(meta)
            if info is None or info.expires_at <= now:
                self.delete(meta.stem, missing_ok=True)
                removed += 1
        for stale in self.directory.glob(".*.part"):
            if stale.stat().st_mtime < now - self.limits.ttl_seconds:
                stale.unlink(missing_ok=True)
        return removed

    def _read(self, meta: Path) -> UploadInfo | None:
        try:
            return UploadInfo(**json.loads(meta.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _checked(self, upload_id: str) -> str:
        if not ID_PATTERN.fullmatch(upload_id):
            raise InvalidArgument(f"upload_id: {quoted(upload_id)} is not an upload id")
        return upload_id

    def _data(self, upload_id: str) -> Path:
        return self.directory / f"{upload_id}.bin"

    def _meta(self, upload_id: str) -> Path:
        return self.directory / f"{upload_id}.json"


def _clean_name(name: str) -> str:
    return os.path.basename(name)[:255]
