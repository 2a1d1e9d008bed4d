"""Uploaded recordings on disk: random ids, a size limit and a time-to-live.

An upload is written to a temporary file while it streams in and renamed into
place once complete and probed (so a half-written or undecodable file is never
visible). Expired uploads are deleted by a periodic sweep and never served.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path

import av

from whospoke.common.errors import InvalidArgument, NotFound, ResourceExhausted

logger = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")


@dataclass(frozen=True)
class UploadInfo:
    upload_id: str
    size_bytes: int
    duration_seconds: float
    format: str
    filename: str
    expires_at: float
    """Unix time after which the upload is deleted."""


class UploadStore:
    def __init__(self, directory: Path, max_bytes: int, ttl_seconds: float) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        directory.mkdir(parents=True, exist_ok=True)

    async def save(self, chunks: AsyncIterator[tuple[bytes, str]]) -> UploadInfo:
        """Store (data, filename) chunks; the first non-empty filename is kept."""
        upload_id = secrets.token_urlsafe(16)
        partial = self.directory / f".{upload_id}.part"
        size, filename = 0, ""
        try:
            with partial.open("wb") as out:
                async for data, name in chunks:
                    filename = filename or name
                    size += len(data)
                    if size > self.max_bytes:
                        raise ResourceExhausted(
                            f"upload: larger than the limit of {self.max_bytes} bytes"
                        )
                    out.write(data)
            if size == 0:
                raise InvalidArgument("upload: no data received")
            duration, container = probe(partial)
            info = UploadInfo(
                upload_id,
                size,
                duration,
                container,
                _clean_name(filename),
                time.time() + self.ttl_seconds,
            )
            self._meta(upload_id).write_text(json.dumps(asdict(info)))
            partial.rename(self._data(upload_id))
        finally:
            partial.unlink(missing_ok=True)
        logger.info("stored upload %s (%d bytes, %.1f s)", upload_id, size, duration)
        return info

    def info(self, upload_id: str) -> UploadInfo:
        meta = self._meta(self._checked(upload_id))
        try:
            info = UploadInfo(**json.loads(meta.read_text()))
        except FileNotFoundError:
            raise NotFound(f"upload_id: no upload {upload_id!r} (expired or deleted)") from None
        if info.expires_at <= time.time() or not self._data(upload_id).exists():
            self.delete(upload_id, missing_ok=True)
            raise NotFound(f"upload_id: no upload {upload_id!r} (expired or deleted)")
        return info

    def path(self, upload_id: str) -> Path:
        """The stored file, after checking the upload exists and has not expired."""
        self.info(upload_id)
        return self._data(upload_id)

    def delete(self, upload_id: str, missing_ok: bool = False) -> None:
        self._checked(upload_id)
        found = self._meta(upload_id).exists()
        self._data(upload_id).unlink(missing_ok=True)
        self._meta(upload_id).unlink(missing_ok=True)
        if not found and not missing_ok:
            raise NotFound(f"upload_id: no upload {upload_id!r} (expired or deleted)")

    def sweep(self) -> int:
        """Delete expired uploads and stale partial files; returns how many went."""
        removed, now = 0, time.time()
        for meta in self.directory.glob("*.json"):
            try:
                expires = float(json.loads(meta.read_text())["expires_at"])
            except (OSError, ValueError, KeyError):
                expires = 0.0
            if expires <= now:
                self.delete(meta.stem, missing_ok=True)
                removed += 1
        for partial in self.directory.glob(".*.part"):
            if partial.stat().st_mtime < now - self.ttl_seconds:
                partial.unlink(missing_ok=True)
        return removed

    def _checked(self, upload_id: str) -> str:
        if not ID_PATTERN.match(upload_id):
            raise InvalidArgument(f"upload_id: {upload_id!r} is not an upload id")
        return upload_id

    def _data(self, upload_id: str) -> Path:
        return self.directory / f"{upload_id}.bin"

    def _meta(self, upload_id: str) -> Path:
        return self.directory / f"{upload_id}.json"


def probe(path: Path) -> tuple[float, str]:
    """(duration in seconds, container format name); InvalidArgument when not audio."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InvalidArgument("upload: the file has no audio track")
            stream = container.streams.audio[0]
            duration = 0.0
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            return duration, container.format.name
    except av.FFmpegError as error:
        raise InvalidArgument(f"upload: not a decodable audio or video file ({error})") from None


def _clean_name(name: str) -> str:
    return os.path.basename(name)[:255]
