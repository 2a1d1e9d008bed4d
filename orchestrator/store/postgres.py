"""The shared job store: PostgreSQL, for several orchestrator replicas serving one queue.

Replicas never wait on each other's rows: claims and upkeep pick rows with
`FOR UPDATE SKIP LOCKED`, and migrations take a transaction-scoped advisory lock, so
replicas starting together upgrade the schema once. Connections come from a small
pool; one the server dropped while it sat idle (a restart) is replaced and the
transaction run again, so a restart costs no failed call. A database that cannot be
reached fails fast (`connect_timeout`) with `StoreUnavailable`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from orchestrator.store.engine import Engine, Params, Row, describe
from orchestrator.store.upkeep import SqlJobStore

CONNECT_TIMEOUT_SECONDS = 5
"""Unless the URL sets `connect_timeout` (libpq counts whole seconds, at least 2)."""
MIGRATION_LOCK_KEY = 0x77686F73
"""Advisory lock serializing migrations ("whos")."""

Connection = psycopg.Connection[Row]


class PostgresEngine(Engine[Connection]):
    kind = "postgresql"
    lock_rows = " FOR UPDATE SKIP LOCKED"
    migration_lock = f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"

    def __init__(self, url: str) -> None:
        super().__init__(describe(url))
        try:
            parameters = conninfo_to_dict(url)
        except psycopg.Error as error:
            raise ValueError(f"job store URL {self.name}: {error}") from error
        self._url = url
        self._options: dict[str, Any] = {"application_name": "whospoke-orchestrator"}
        if "connect_timeout" not in parameters:
            self._options["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
        # A server or network that vanishes without closing the connection must fail a
        # call within seconds, not hang a worker thread (and let this replica's leases
        # lapse while it works): TCP keepalives, a send timeout and a statement timeout.
        for name, value in (
            ("keepalives", 1),
            ("keepalives_idle", 10),
            ("keepalives_interval", 5),
            ("keepalives_count", 3),
            ("tcp_user_timeout", 30_000),
            ("options", "-c statement_timeout=60000"),
        ):
            if name not in parameters:
                self._options[name] = value

    def connect(self) -> Connection:
        return psycopg.connect(self._url, autocommit=False, **self._options)

    def begin(self, conn: Connection, write: bool) -> None:
        """Nothing to do: psycopg begins a transaction with the first statement."""

    def commit(self, conn: Connection) -> None:
        conn.commit()

    def disconnect(self, conn: Connection) -> None:
        with contextlib.suppress(psycopg.Error):
            conn.close()  # rolls back an open transaction

    @staticmethod
    def _placeholders(sql: str) -> str:
        """`?` placeholders as psycopg's `%s` (our SQL has no other `?` nor `%`)."""
        return sql.replace("?", "%s")

    def execute(self, conn: Connection, sql: str, params: Params) -> tuple[list[Row], int]:
        cursor = conn.execute(self._placeholders(sql), list(params) if params else None)
        rows = cursor.fetchall() if cursor.description else []
        return rows, cursor.rowcount

    def executemany(self, conn: Connection, sql: str, params: list[Params]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(self._placeholders(sql), params)

    def is_database_error(self, error: BaseException) -> bool:
        # Only a lost or refused connection is "unavailable"; a rejected statement (bad
        # data) is a bug to report, not a reason for callers to retry forever.
        return isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError))

    def is_stale(self, conn: Connection, error: BaseException) -> bool:
        return isinstance(error, psycopg.OperationalError) and conn.broken


class PostgresJobStore(SqlJobStore):
    """`JobStore` in the PostgreSQL database at `url` (`postgresql://USER@HOST/DB`)."""

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__(PostgresEngine(url), clock)
