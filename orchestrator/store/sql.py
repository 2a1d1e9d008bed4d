"""The job store's logic, written once in SQL both SQLite and PostgreSQL run.

Each method is one transaction (`Engine.run`). Ownership is checked in the same
statement that writes (`WHERE replica = ? AND state = RUNNING`), so a replica whose
lease ran out cannot overwrite the job's new owner whatever the timing. Rows that
several replicas may pick at once (the queue, expired leases, due webhooks) are
selected with `Engine.lock_rows` (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite
serializes writers anyway), so no two replicas take the same one. Queue-wide upkeep
and how jobs end are in `orchestrator.store.upkeep`.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from orchestrator.store.base import (
    JobRecord,
    JobState,
    Lease,
    NewJob,
    Page,
    StoreUnavailable,
    WebhookAttemptRecord,
    WebhookDelivery,
)
from orchestrator.store.engine import Engine, Row, Tx
from orchestrator.store.schema import (
    COLUMNS_SQL,
    JOB_COLUMNS,
    LATEST,
    MIGRATIONS,
    SCHEMA_VERSION_TABLE,
    TYPES,
)
from orchestrator.store.speakers import SqlSpeakers

ENDED_SQL = "(3, 4, 5)"
"""SUCCEEDED, FAILED, CANCELLED: the states a job ends in (before it expires)."""
AUDIO_CHUNKS_PER_QUERY = 8


_NEW_JOB: dict[str, object] = {
    "state": int(JobState.QUEUED),
    "audio_bytes": 0,
    "started_at": None,
    "ended_at": None,
    "expires_at": None,
    "attempts": 0,
    "replica": "",
    "lease_expires_at": None,
    "cancel_requested": 0,
    "stage": 0,
    "progress": b"",
    "audio_seconds": 0.0,
    "error_code": "",
    "error_message": "",
    "webhook_delivery": int(WebhookDelivery.NONE),
}
"""A new job's columns, but those `submit` takes from the `NewJob`."""


def record(
    row: Row,
    labels: tuple[tuple[str, str], ...] = (),
    result: bytes | None = None,
    attempts: tuple[WebhookAttemptRecord, ...] = (),
) -> JobRecord:
    """A `JobRecord` from a row of `JOB_COLUMNS`."""
    values = dict(zip(JOB_COLUMNS, row, strict=True))
    values["state"] = JobState(values["state"])
    values["webhook_delivery"] = WebhookDelivery(values["webhook_delivery"])
    values["cancel_requested"] = bool(values["cancel_requested"])
    values["options"] = bytes(values["options"])
    values["progress"] = bytes(values["progress"])
    return JobRecord(**values, labels=labels, result=result, webhook_attempts=attempts)


class SqlJobs:
    """Most of `JobStore` over an `Engine` (`upkeep.SqlJobStore` is the rest)."""

    def __init__(self, engine: Engine[Any], clock: Callable[[], float] = time.time) -> None:
        self.kind = engine.kind
        self._db = engine
        self._clock = clock

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._db.name}>"

    @property
    def name(self) -> str:
        """The database, for logs (no password)."""
        return self._db.name

    def close(self) -> None:
        self._db.close()

    def speakers(self) -> SqlSpeakers:
        """The enrolled voices, in the same database."""
        return SqlSpeakers(self._db, self._clock)

    def migrate(self) -> None:
        def work(tx: Tx) -> None:
            if self._db.migration_lock:
                tx.rows(self._db.migration_lock)
            tx.count(SCHEMA_VERSION_TABLE.format(**TYPES[self.kind]))
            row = tx.one("SELECT max(version) FROM schema_version")
            current = int(row[0]) if row and row[0] is not None else 0
            if current > LATEST:
                raise StoreUnavailable(
                    f"job database {self._db.name} has schema version {current}, newer than"
                    f" this orchestrator's {LATEST}: upgrade the orchestrator"
                )
            for migration in MIGRATIONS:
                if migration.version > current:
                    for statement in migration.sql(self.kind):
                        tx.count(statement)
                    tx.count(
                        "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                        (migration.version, self._clock()),
                    )

        self._db.run(work)

    def submit(self, job: NewJob, audio: Iterable[bytes]) -> tuple[JobRecord, bool]:
        return self._db.run(lambda tx: self._submit(tx, job, audio))

    def _submit(self, tx: Tx, job: NewJob, audio: Iterable[bytes]) -> tuple[JobRecord, bool]:
        if job.idempotency_key and (existing := self._by_key(tx, job)):
            return existing, True
        now = self._clock()
        values = {
            **_NEW_JOB,
            "job_id": job.job_id,
            "client": job.client,
            "options": job.options,
            "filename": job.filename,
            "webhook_url": job.webhook_url,
            "idempotency_key": job.idempotency_key,
            "submitted_at": now,
        }
        inserted = tx.rows(
            f"INSERT INTO jobs ({COLUMNS_SQL}, last_sequence) VALUES"
            f" ({', '.join('?' * len(JOB_COLUMNS))}, 0)"
            " ON CONFLICT (client, idempotency_key) WHERE idempotency_key <> '' DO NOTHING"
            " RETURNING job_id",
            [values[column] for column in JOB_COLUMNS],
        )
        if not inserted:  # a concurrent submission with the same key committed first
            existing = self._by_key(tx, job)
            assert existing is not None
            return existing, True
        tx.many(
            "INSERT INTO job_labels (job_id, position, key, value) VALUES (?, ?, ?, ?)",
            [(job.job_id, i, key, value) for i, (key, value) in enumerate(job.labels)],
        )
        size = 0
        for seq, chunk in enumerate(audio):
            tx.count(
                "INSERT INTO job_audio (job_id, seq, data) VALUES (?, ?, ?)",
                (job.job_id, seq, chunk),
            )
            size += len(chunk)
        tx.count("UPDATE jobs SET audio_bytes = ? WHERE job_id = ?", (size, job.job_id))
        created = JobRecord(
            job_id=job.job_id,
            client=job.client,
            state=JobState.QUEUED,
            options=job.options,
            filename=job.filename,
            audio_bytes=size,
            webhook_url=job.webhook_url,
            idempotency_key=job.idempotency_key,
            labels=job.labels,
            submitted_at=now,
        )
        return created, False

    def find(self, client: str, idempotency_key: str) -> JobRecord | None:
        job = NewJob(job_id="", client=client, options=b"", idempotency_key=idempotency_key)
        return self._db.run(lambda tx: self._by_key(tx, job), write=False)

    def _by_key(self, tx: Tx, job: NewJob) -> JobRecord | None:
        row = tx.one(
            "SELECT job_id FROM jobs WHERE client = ? AND idempotency_key = ?",
            (job.client, job.idempotency_key),
        )
        return self._get(tx, row[0]) if row else None

    def get(self, job_id: str) -> JobRecord | None:
        return self._db.run(lambda tx: self._get(tx, job_id), write=False)

    def _get(self, tx: Tx, job_id: str) -> JobRecord | None:
        row = tx.one(f"SELECT {COLUMNS_SQL}, result FROM jobs WHERE job_id = ?", (job_id,))
        if row is None:
            return None
        attempts = tx.rows(
            "SELECT number, time, http_status, error, duration FROM webhook_attempts"
            " WHERE job_id = ? ORDER BY number",
            (job_id,),
        )
        result = None if row[-1] is None else bytes(row[-1])
        return record(
            row[:-1],
            labels=self._labels(tx, [job_id]).get(job_id, ()),
            result=result,
            attempts=tuple(WebhookAttemptRecord(*attempt) for attempt in attempts),
        )

    def _labels(
        self, tx: Tx, job_ids: builtins.list[str]
    ) -> dict[str, tuple[tuple[str, str], ...]]:
        if not job_ids:
            return {}
        found: dict[str, builtins.list[tuple[str, str]]] = {}
        for job_id, key, value in tx.rows(
            "SELECT job_id, key, value FROM job_labels"
            f" WHERE job_id IN ({', '.join('?' * len(job_ids))}) ORDER BY job_id, position",
            job_ids,
        ):
            found.setdefault(job_id, []).append((key, value))
        return {job_id: tuple(labels) for job_id, labels in found.items()}

    def _with_labels(self, tx: Tx, rows: builtins.list[Row]) -> builtins.list[JobRecord]:
        labels = self._labels(tx, [row[0] for row in rows])
        return [record(row, labels.get(row[0], ())) for row in rows]

    def list(
        self,
        state: JobState | None = None,
        labels: tuple[tuple[str, str], ...] = (),
        limit: int = 50,
        after: Page | None = None,
    ) -> builtins.list[JobRecord]:
        where: builtins.list[str] = []
        params: builtins.list[object] = []
        if state is not None:
            where.append("state = ?")
            params.append(int(state))
        for key, value in labels:
            where.append("job_id IN (SELECT job_id FROM job_labels WHERE key = ? AND value = ?)")
            params += [key, value]
        if after is not None:
            where.append("(submitted_at < ? OR (submitted_at = ? AND job_id < ?))")
            params += [after.submitted_at, after.submitted_at, after.job_id]
        sql = f"SELECT {COLUMNS_SQL} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY submitted_at DESC, job_id DESC LIMIT ?"

        def work(tx: Tx) -> builtins.list[JobRecord]:
            return self._with_labels(tx, tx.rows(sql, [*params, limit]))

        return self._db.run(work, write=False)

    def queue_position(self, job_id: str) -> int:
        row = self._db.run(
            lambda tx: tx.one(
                "SELECT count(*) FROM jobs q, jobs j WHERE j.job_id = ? AND j.state = 1"
                " AND q.state = 1 AND (q.submitted_at < j.submitted_at"
                " OR (q.submitted_at = j.submitted_at AND q.job_id <= j.job_id))",
                (job_id,),
            ),
            write=False,
        )
        return int(row[0]) if row else 0

    def claim(self, replica: str, lease_seconds: float) -> JobRecord | None:
        def work(tx: Tx) -> JobRecord | None:
            now = self._clock()
            rows = tx.rows(
                "UPDATE jobs SET state = 2, replica = ?, attempts = attempts + 1,"
                " started_at = ?, lease_expires_at = ? WHERE job_id = ("
                " SELECT job_id FROM jobs WHERE state = 1 ORDER BY submitted_at, job_id"
                f" LIMIT 1{self._db.lock_rows}) RETURNING {COLUMNS_SQL}",
                (replica, now, now + lease_seconds),
            )
            return self._with_labels(tx, rows)[0] if rows else None

        return self._db.run(work)

    def renew(self, job_id: str, replica: str, lease_seconds: float) -> Lease:
        row = self._db.run(
            lambda tx: tx.one(
                "UPDATE jobs SET lease_expires_at = ? WHERE job_id = ? AND replica = ?"
                " AND state = 2 RETURNING cancel_requested",
                (self._clock() + lease_seconds, job_id, replica),
            )
        )
        if row is None:
            return Lease.LOST
        return Lease.CANCEL if row[0] else Lease.HELD

    def release(self, job_id: str, replica: str) -> bool:
        """A cancel requested meanwhile stays requested: whoever claims the job next
        sees `cancel_requested` (and `renew` answers CANCEL)."""
        return bool(
            self._db.run(
                lambda tx: tx.count(
                    "UPDATE jobs SET state = 1, attempts = attempts - 1, started_at = NULL,"
                    " lease_expires_at = NULL WHERE job_id = ? AND replica = ? AND state = 2",
                    (job_id, replica),
                )
            )
        )

    def read_audio(self, job_id: str) -> Iterator[bytes]:
        """A few chunks per query, each its own short transaction, so a slow reader
        holds no connection (nor, on SQLite, a snapshot) between them."""
        seq = 0
        while True:
            rows = self._audio_chunks(job_id, seq)
            for number, data in rows:
                yield bytes(data)
                seq = int(number) + 1
            if len(rows) < AUDIO_CHUNKS_PER_QUERY:
                return

    def _audio_chunks(self, job_id: str, first: int) -> builtins.list[Row]:
        return self._db.run(
            lambda tx: tx.rows(
                "SELECT seq, data FROM job_audio WHERE job_id = ? AND seq >= ?"
                " ORDER BY seq LIMIT ?",
                (job_id, first, AUDIO_CHUNKS_PER_QUERY),
            ),
            write=False,
        )

    def append_event(
        self,
        job_id: str,
        replica: str,
        event: bytes,
        stage: int | None = None,
        progress: bytes | None = None,
        audio_seconds: float | None = None,
    ) -> int:
        changes = ["last_sequence = last_sequence + 1"]
        params: builtins.list[object] = []
        for column, value in (
            ("stage", stage),
            ("progress", progress),
            ("audio_seconds", audio_seconds),
        ):
            if value is not None:
                changes.append(f"{column} = ?")
                params.append(value)
        sql = (
            f"UPDATE jobs SET {', '.join(changes)} WHERE job_id = ? AND replica = ?"
            " AND state = 2 RETURNING last_sequence"
        )

        def work(tx: Tx) -> int:
            row = tx.one(sql, [*params, job_id, replica])
            if row is None:
                return 0
            tx.count(
                "INSERT INTO job_events (job_id, seq, data) VALUES (?, ?, ?)",
                (job_id, row[0], event),
            )
            return int(row[0])

        return self._db.run(work)

    def events(self, job_id: str, after: int = 0) -> builtins.list[tuple[int, bytes]]:
        rows = self._db.run(
            lambda tx: tx.rows(
                "SELECT seq, data FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq",
                (job_id, after),
            ),
            write=False,
        )
        return [(int(seq), bytes(data)) for seq, data in rows]
