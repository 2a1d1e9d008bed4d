"""The default job store: one SQLite file in the data directory, for one orchestrator.

Write-ahead logging lets readers (job status, watchers) run while a job writes its
events; `synchronous=NORMAL` keeps commits off the disk's flush path (a power cut
may lose the last few commits, never corrupt the file). Each worker thread borrows
its own connection from the pool, and every write transaction starts with
`BEGIN IMMEDIATE`, taking the write lock up front, so two writers queue on the busy
timeout instead of failing when one upgrades a read to a write.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.store.engine import Engine, Params, Row
from orchestrator.store.upkeep import SqlJobStore

BUSY_TIMEOUT_SECONDS = 10.0
"""How long a writer waits for another's transaction before giving up (StoreUnavailable)."""


_SWITCHING = threading.Lock()


class SqliteEngine(Engine[sqlite3.Connection]):
    kind = "sqlite"
    lock_rows = ""
    migration_lock = None

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path

    def connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,  # transactions are begun explicitly
            check_same_thread=False,  # pooled: used by one thread at a time, not always the same
        )
        try:
            with _SWITCHING:
                self._use_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _use_wal(conn: sqlite3.Connection) -> None:
        """Switch the file to write-ahead logging (once; it stays). The switch needs the
        file to itself and answers "locked" at once, without the busy timeout, while
        another connection makes it: so connections here take turns, and one from
        another process is waited for."""
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def begin(self, conn: sqlite3.Connection, write: bool) -> None:
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def commit(self, conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    def disconnect(self, conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            conn.close()  # rolls back an open transaction

    def execute(self, conn: sqlite3.Connection, sql: str, params: Params) -> tuple[list[Row], int]:
        cursor = conn.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
        return rows, cursor.rowcount

    def executemany(self, conn: sqlite3.Connection, sql: str, params: list[Params]) -> None:
        conn.executemany(sql, params)

    def is_database_error(self, error: BaseException) -> bool:
        # Locked, busy, unopenable: "unavailable"; an integrity error is a bug, not an outage.
        return isinstance(error, sqlite3.OperationalError)


class SqliteJobStore(SqlJobStore):
    """`JobStore` in the SQLite file at `path` (created with its directory)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        super().__init__(SqliteEngine(path), clock)
