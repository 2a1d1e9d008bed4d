"""Upload quotas: how many uploads may stream in at once and how many bytes they may hold.

Without them any client could open hundreds of upload streams (each a file and a
descriptor) or fill the disk within the per-upload size limit. Limits apply to
the whole server and to each client, identified by its bearer token when tokens
are required, else by its address. The counts live in memory, guarded by a lock
because uploads are written from worker threads; stored uploads are counted
again from disk at start-up.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from whospoke.common.config import MiB
from whospoke.common.errors import ResourceExhausted

GiB = 1024 * MiB


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 2 * GiB
    """One upload."""
    max_total_bytes: int = 16 * GiB
    """All uploads on disk, those still streaming in included."""
    max_client_bytes: int = 4 * GiB
    """One client's uploads on disk, those still streaming in included."""
    max_concurrent: int = 16
    """Uploads streaming in at once."""
    max_client_concurrent: int = 4
    """Uploads one client may stream in at once."""
    ttl_seconds: float = 3600.0
    max_audio_seconds: float = 4 * 3600.0


class UploadUsage:
    """What uploads hold now: bytes per client and streams in progress."""

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._stored: dict[str, tuple[str, int]] = {}
        self._bytes: Counter[str] = Counter()
        self._active: Counter[str] = Counter()

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(self._bytes.values())

    @property
    def in_progress(self) -> int:
        with self._lock:
            return sum(self._active.values())

    def begin(self, client: str) -> UploadUsage.Ticket:
        """A place for one more upload from `client`, or RESOURCE_EXHAUSTED naming the limit."""
        limits = self.limits
        with self._lock:
            if sum(self._active.values()) >= limits.max_concurrent:
                raise ResourceExhausted(
                    f"upload: {limits.max_concurrent} uploads are in progress, the server's "
                    "limit (--max-concurrent-uploads); retry later"
                )
            if self._active[client] >= limits.max_client_concurrent:
                raise ResourceExhausted(
                    f"upload: this client has {limits.max_client_concurrent} uploads in "
                    "progress, the limit per client (--max-client-concurrent-uploads)"
                )
            self._active[client] += 1
        return UploadUsage.Ticket(self, client)

    def stored(self, upload_id: str, client: str, size: int) -> None:
        with self._lock:
            self._stored[upload_id] = (client, size)
            self._bytes[client] += size

    def forget(self, upload_id: str) -> None:
        with self._lock:
            client, size = self._stored.pop(upload_id, ("", 0))
            self._bytes[client] -= size

    def _grow(self, client: str, size: int, added: int) -> None:
        limits = self.limits
        with self._lock:
            if size > limits.max_bytes:
                raise ResourceExhausted(
                    f"upload: larger than the limit of {limits.max_bytes} bytes "
                    "(--max-upload-bytes)"
                )
            if sum(self._bytes.values()) + added > limits.max_total_bytes:
                raise ResourceExhausted(
                    f"upload: the server holds {limits.max_total_bytes} bytes of uploads, its "
                    "limit (--max-upload-total-bytes); delete uploads or retry later"
                )
            if self._bytes[client] + added > limits.max_client_bytes:
                raise ResourceExhausted(
                    f"upload: this client holds {limits.max_client_bytes} bytes of uploads, "
                    "the limit per client (--max-client-upload-bytes); delete uploads first"
                )
            self._bytes[client] += added

    def _end(self, client: str, size: int, upload_id: str | None) -> None:
        with self._lock:
            self._active[client] -= 1
            if upload_id is None:
                self._bytes[client] -= size
            else:
                self._stored[upload_id] = (client, size)

    class Ticket:
        """One upload in progress: its bytes count against the quotas as they arrive."""

        def __init__(self, usage: UploadUsage, client: str) -> None:
            self._usage = usage
            self._client = client
            self._ended = False
            self.bytes = 0

        def grow(self, added: int) -> None:
            self._usage._grow(self._client, self.bytes + added, added)
            self.bytes += added

        def finish(self, upload_id: str) -> None:
            """The upload is stored: its bytes stay counted until it is deleted."""
            if not self._ended:
                self._ended = True
                self._usage._end(self._client, self.bytes, upload_id)

        def abort(self) -> None:
            if not self._ended:
                self._ended = True
                self._usage._end(self._client, self.bytes, None)
