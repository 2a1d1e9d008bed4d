"""The job database's tables, as versioned migrations shared by SQLite and PostgreSQL.

A database records the versions applied in `schema_version`; `migrate` applies the
missing ones in order inside one transaction, so a replica never sees half a schema
and one that starts on an older database upgrades it. Released migrations are never
edited: a change is a new migration appended to `MIGRATIONS`.

The statements are written once for both databases: `{blob}` and `{real}` become the
database's own type names, and a migration may add statements only one of them
needs (PostgreSQL storing audio uncompressed, say).
"""

from __future__ import annotations

from dataclasses import dataclass

TYPES = {
    "sqlite": {"blob": "BLOB", "real": "REAL"},
    "postgresql": {"blob": "BYTEA", "real": "DOUBLE PRECISION"},
}


@dataclass(frozen=True)
class Migration:
    version: int
    statements: tuple[str, ...]
    postgresql: tuple[str, ...] = ()
    """Run after `statements` on PostgreSQL only."""

    def sql(self, kind: str) -> list[str]:
        shared = [statement.format(**TYPES[kind]) for statement in self.statements]
        return shared + list(self.postgresql if kind == "postgresql" else ())


SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY, applied_at {real} NOT NULL)"
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            # The job's own columns; `result` comes last so SQLite reads past it
            # only when asked for it.
            """CREATE TABLE jobs (
                job_id TEXT PRIMARY KEY,
                client TEXT NOT NULL,
                state INTEGER NOT NULL,
                options {blob} NOT NULL,
                filename TEXT NOT NULL,
                audio_bytes BIGINT NOT NULL,
                webhook_url TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                submitted_at {real} NOT NULL,
                started_at {real},
                ended_at {real},
                expires_at {real},
                attempts INTEGER NOT NULL,
                replica TEXT NOT NULL,
                lease_expires_at {real},
                cancel_requested INTEGER NOT NULL,
                stage INTEGER NOT NULL,
                progress {blob} NOT NULL,
                audio_seconds {real} NOT NULL,
                error_code TEXT NOT NULL,
                error_message TEXT NOT NULL,
                webhook_delivery INTEGER NOT NULL,
                webhook_next_at {real},
                last_sequence BIGINT NOT NULL,
                result {blob}
            )""",
            # One job per (client, key): what makes two racing submissions agree.
            "CREATE UNIQUE INDEX jobs_idempotency ON jobs (client, idempotency_key)"
            " WHERE idempotency_key <> ''",
            # Claiming, queue positions and listing by state, oldest or newest first.
            "CREATE INDEX jobs_by_state ON jobs (state, submitted_at, job_id)",
            "CREATE INDEX jobs_by_time ON jobs (submitted_at, job_id)",
            "CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 2",
            "CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL",
            "CREATE INDEX jobs_webhooks ON jobs (webhook_next_at) WHERE webhook_delivery = 1",
            """CREATE TABLE job_labels (
                job_id TEXT NOT NULL,
                position INTEGER NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (job_id, key)
            )""",
            "CREATE INDEX job_labels_by_value ON job_labels (key, value, job_id)",
            """CREATE TABLE job_audio (
                job_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                data {blob} NOT NULL,
                PRIMARY KEY (job_id, seq)
            )""",
            """CREATE TABLE job_events (
                job_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                data {blob} NOT NULL,
                PRIMARY KEY (job_id, seq)
            )""",
            """CREATE TABLE webhook_attempts (
                job_id TEXT NOT NULL,
                number INTEGER NOT NULL,
                time {real} NOT NULL,
                http_status INTEGER NOT NULL,
                error TEXT NOT NULL,
                duration {real} NOT NULL,
                PRIMARY KEY (job_id, number)
            )""",
        ),
        postgresql=(
            # Audio is already compressed: storing it as is saves CPU for nothing lost.
            "ALTER TABLE job_audio ALTER COLUMN data SET STORAGE EXTERNAL",
        ),
    ),
    Migration(
        2,
        (
            # Enrolled voices (`whospoke.v1.Speakers`): the diarizer's embedding as
            # little-endian float32, and the model that made it.
            """CREATE TABLE speakers (
                name TEXT PRIMARY KEY,
                embedding {blob} NOT NULL,
                embedding_model TEXT NOT NULL,
                speech_seconds {real} NOT NULL,
                enrolled_at {real} NOT NULL
            )""",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version

JOB_COLUMNS = (
    "job_id",
    "client",
    "state",
    "options",
    "filename",
    "audio_bytes",
    "webhook_url",
    "idempotency_key",
    "submitted_at",
    "started_at",
    "ended_at",
    "expires_at",
    "attempts",
    "replica",
    "lease_expires_at",
    "cancel_requested",
    "stage",
    "progress",
    "audio_seconds",
    "error_code",
    "error_message",
    "webhook_delivery",
)
"""The columns a `JobRecord` is made of, in `record`'s order (the result aside)."""

COLUMNS_SQL = ", ".join(JOB_COLUMNS)

CHILD_TABLES = ("job_audio", "job_events", "webhook_attempts", "job_labels")
"""Tables holding a job's parts, removed with it (SQLite has no cascades unless asked)."""
