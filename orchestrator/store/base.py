"""What the durable job queue needs from a database, behind one interface.

Two implementations: SQLite (`orchestrator.store.sqlite`, the default: a file in
the data directory, one orchestrator) and PostgreSQL (`orchestrator.store.postgres`,
several replicas sharing one queue). Both keep everything a job needs in the
database itself (options, audio, event log, result, webhook attempts), so any
replica can run any job and a restarted one loses nothing; no replica needs a
shared filesystem.

Every method blocks (callers run them in worker threads) and is atomic on its
own. Times are Unix seconds from the store's clock, so tests can move it.
Protobuf payloads (options, events, progress, result) are stored as serialized
bytes: the store never interprets them.

Claiming is exclusive: a job is RUNNING for exactly one replica, under a lease
that replica renews; `requeue_expired` hands jobs whose lease ran out (their
replica died or lost the database) back to the queue, or fails them after
`max_attempts`. Writes that only the job's owner may make (`append_event`,
`finish`, `renew`) take the replica's id and do nothing when it no longer owns
the job, so a replica that comes back after its lease expired cannot overwrite
the new owner's work.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from orchestrator.store.speakers import SqlSpeakers


class JobState(enum.IntEnum):
    """Same numbers as `whospoke.v1.JobState`."""

    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5
    EXPIRED = 6

    @property
    def ended(self) -> bool:
        return self >= JobState.SUCCEEDED


class WebhookDelivery(enum.IntEnum):
    """Same numbers as `whospoke.v1.WebhookDelivery`."""

    NONE = 0
    PENDING = 1
    DELIVERED = 2
    FAILED = 3


class Lease(enum.Enum):
    """What `renew` found."""

    HELD = "held"
    """Still ours, lease extended."""
    CANCEL = "cancel"
    """Still ours, extended, but a client asked to cancel it."""
    LOST = "lost"
    """No longer ours (expired and re-queued, deleted): stop working on it."""


@dataclass(frozen=True)
class NewJob:
    job_id: str
    client: str
    """Who submitted it (token digest or peer), scoping idempotency keys."""
    options: bytes
    """Serialized `ProcessOptions`."""
    filename: str = ""
    webhook_url: str = ""
    idempotency_key: str = ""
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WebhookAttemptRecord:
    number: int
    time: float
    http_status: int = 0
    """0 when no HTTP answer came."""
    error: str = ""
    """Empty when delivered."""
    duration: float = 0.0


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    client: str
    state: JobState
    options: bytes
    filename: str
    audio_bytes: int
    webhook_url: str
    idempotency_key: str
    labels: tuple[tuple[str, str], ...]
    submitted_at: float
    started_at: float | None = None
    """Start of the last attempt."""
    ended_at: float | None = None
    expires_at: float | None = None
    attempts: int = 0
    replica: str = ""
    lease_expires_at: float | None = None
    cancel_requested: bool = False
    stage: int = 0
    """`whospoke.v1.Stage` the last attempt reached."""
    progress: bytes = b""
    """Serialized latest `Progress`."""
    audio_seconds: float = 0.0
    result: bytes | None = None
    """Serialized `ProcessResult` (only from `get`, never from `list`)."""
    error_code: str = ""
    error_message: str = ""
    webhook_delivery: WebhookDelivery = WebhookDelivery.NONE
    webhook_attempts: tuple[WebhookAttemptRecord, ...] = field(default=())
    """Only from `get`; empty from `list`."""


@dataclass(frozen=True)
class Page:
    """Where a `list` page starts: after this (submitted_at, job_id) in newest-first order."""

    submitted_at: float
    job_id: str


@dataclass(frozen=True)
class QueueStats:
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    oldest_queued_seconds: float = 0.0
    average_queue_seconds: float = 0.0
    """Mean start - submit over kept jobs that have started."""
    average_processing_seconds: float = 0.0
    """Mean end - start over kept jobs that ended after starting."""


class JobStore(Protocol):
    kind: str
    """"sqlite" or "postgresql"."""

    def migrate(self) -> None:
        """Create or upgrade the schema to the current version (versioned migrations,
        applied in order inside transactions; safe when several replicas start at once).
        Raises `StoreUnavailable` when the database cannot be reached."""
        ...

    def close(self) -> None: ...

    def speakers(self) -> SqlSpeakers:
        """The enrolled voices (`whospoke.v1.Speakers`), in the same database."""
        ...

    def submit(self, job: NewJob, audio: Iterable[bytes]) -> tuple[JobRecord, bool]:
        """Store a QUEUED job and its audio (written in the chunks given). When
        (client, idempotency_key) already names a job (key not empty), store nothing
        and return that job with True."""
        ...

    def find(self, client: str, idempotency_key: str) -> JobRecord | None:
        """The job `client` submitted with this (non-empty) idempotency key, if any."""
        ...

    def get(self, job_id: str) -> JobRecord | None:
        """The job with its result and webhook attempts; None when unknown or deleted.
        An EXPIRED job is returned (state EXPIRED, no result) until it is purged."""
        ...

    def list(
        self,
        state: JobState | None = None,
        labels: tuple[tuple[str, str], ...] = (),
        limit: int = 50,
        after: Page | None = None,
    ) -> list[JobRecord]:
        """Newest first (submitted_at, then job_id, descending), without results."""
        ...

    def queue_position(self, job_id: str) -> int:
        """1 + the number of QUEUED jobs submitted before it; 0 when it is not queued."""
        ...

    def claim(self, replica: str, lease_seconds: float) -> JobRecord | None:
        """Atomically take the oldest QUEUED job: RUNNING, owned by `replica`,
        attempts + 1, started now, lease until now + lease_seconds. None when none waits.
        (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas never wait on each other.)"""
        ...

    def renew(self, job_id: str, replica: str, lease_seconds: float) -> Lease:
        """Extend the lease of a job `replica` runs."""
        ...

    def release(self, job_id: str, replica: str) -> bool:
        """Hand a job `replica` runs back to the queue (QUEUED, lease cleared, the attempt
        not counted: the replica is shutting down, the job did not fail). False when it
        was no longer ours."""
        ...

    def read_audio(self, job_id: str) -> Iterator[bytes]:
        """The job's audio file, chunk by chunk, in order."""
        ...

    def append_event(
        self,
        job_id: str,
        replica: str,
        event: bytes,
        stage: int | None = None,
        progress: bytes | None = None,
        audio_seconds: float | None = None,
    ) -> int:
        """Add a serialized `ProcessEvent` to the job's log (and update its stage,
        latest progress, audio duration when given); returns its sequence number (1, 2, ...,
        continuing across attempts), or 0 when `replica` no longer owns the job."""
        ...

    def events(self, job_id: str, after: int = 0) -> builtins.list[tuple[int, bytes]]:
        """(sequence, serialized event) after `after`, in order."""
        ...

    def finish(
        self,
        job_id: str,
        replica: str,
        state: JobState,
        ttl_seconds: float,
        result: bytes | None = None,
        error_code: str = "",
        error_message: str = "",
    ) -> bool:
        """End a job `replica` runs: its state, result or error, ended now, expires
        after `ttl_seconds`; deletes its audio; webhook PENDING (due now) when it has a
        URL. False (nothing written) when `replica` no longer owns it."""
        ...

    def cancel(self, job_id: str, ttl_seconds: float) -> JobRecord | None:
        """A QUEUED job ends CANCELLED at once (audio deleted, webhook due); a RUNNING
        one gets `cancel_requested` (its replica ends it); an ended one is unchanged.
        Returns the job as it now is; None when unknown."""
        ...

    def delete(self, job_id: str) -> bool:
        """Remove the job and everything it holds; False when unknown."""
        ...

    def requeue_expired(self, max_attempts: int, ttl_seconds: float) -> builtins.list[str]:
        """RUNNING jobs whose lease has expired go back to QUEUED, or end FAILED
        (UNAVAILABLE, saying the replicas running it died) once `attempts` reached
        `max_attempts`; a job whose cancel was requested ends CANCELLED. Returns their ids."""
        ...

    def expire(self, purge_after_seconds: float) -> int:
        """Ended jobs past `expires_at` become EXPIRED: result, events, audio and
        webhook attempts deleted, the row kept so their ids answer "expired"; EXPIRED
        rows older than `purge_after_seconds` past expiry are removed. Returns how many
        expired now."""
        ...

    def stats(self) -> QueueStats: ...

    def claim_webhooks(self, hold_seconds: float, limit: int) -> builtins.list[JobRecord]:
        """Ended jobs whose webhook is PENDING and due; each is held (not due again)
        for `hold_seconds`, so only one replica delivers it at a time."""
        ...

    def record_webhook_attempt(
        self,
        job_id: str,
        attempt: WebhookAttemptRecord,
        delivery: WebhookDelivery,
        next_at: float | None = None,
    ) -> None:
        """Append an attempt; set the delivery state and, while PENDING, when the next
        attempt is due."""
        ...


class StoreUnavailable(Exception):
    """The database cannot be reached or answered with an error; the message says
    which database (without its password) and why."""
