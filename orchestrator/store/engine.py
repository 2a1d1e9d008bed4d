"""Connections and transactions, the part of a store that differs per database.

The job logic (`orchestrator.store.sql`) is written once, as functions of a `Tx` that
run inside one transaction; an `Engine` supplies the connections (a small pool, each
used by one thread at a time, since calls come from many worker threads at once),
begins and ends the transactions, and turns the driver's errors into
`StoreUnavailable` naming the database without its password. SQL is written with `?`
placeholders whatever the database.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from orchestrator.store.base import StoreUnavailable

_PASSWORD_PARAMETER = re.compile(r"(?i)(\bpassword=)[^&\s]*")


C = TypeVar("C")
T = TypeVar("T")
Row = tuple[Any, ...]
Params = Sequence[object]


def describe(url: str) -> str:
    """`url` with any password masked, for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        userinfo, at, hosts = authority.rpartition("@")
        if at and ":" in userinfo:
            authority = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
        url = f"{scheme}{sep}{authority}{slash}{path}"
    return _PASSWORD_PARAMETER.sub(r"\1***", url)


class Tx:
    """One transaction on one connection."""

    def __init__(self, engine: Engine[Any], conn: object) -> None:
        self._engine = engine
        self._conn = conn
        self.statements = 0
        """Statements that have succeeded (a stale pooled connection fails on the first)."""

    def rows(self, sql: str, params: Params = ()) -> list[Row]:
        rows, _ = self._engine.execute(self._conn, sql, params)
        self.statements += 1
        return rows

    def one(self, sql: str, params: Params = ()) -> Row | None:
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    def count(self, sql: str, params: Params = ()) -> int:
        """Run a statement; how many rows it changed."""
        _, count = self._engine.execute(self._conn, sql, params)
        self.statements += 1
        return count

    def many(self, sql: str, params: Iterable[Params]) -> None:
        batch = list(params)
        if batch:
            self._engine.executemany(self._conn, sql, batch)
            self.statements += 1


class Engine(ABC, Generic[C]):
    """A database's connections (pooled) and transactions."""

    kind: str
    lock_rows: str
    """Appended to a SELECT picking rows to change, so concurrent writers skip them."""
    migration_lock: str | None
    """Statement serializing migrations (PostgreSQL's advisory lock); None when the
    write transaction already does."""

    def __init__(self, name: str, max_idle: int = 8) -> None:
        self.name = name
        """The database, as logs and errors show it (no password)."""
        self._max_idle = max_idle
        self._idle: list[C] = []
        self._lock = threading.Lock()
        self._closed = False

    @abstractmethod
    def connect(self) -> C: ...

    @abstractmethod
    def begin(self, conn: C, write: bool) -> None: ...

    @abstractmethod
    def commit(self, conn: C) -> None: ...

    @abstractmethod
    def disconnect(self, conn: C) -> None:
        """Close, ignoring errors (the connection may be broken)."""

    @abstractmethod
    def execute(self, conn: C, sql: str, params: Params) -> tuple[list[Row], int]:
        """Rows returned (if any) and rows changed."""

    @abstractmethod
    def executemany(self, conn: C, sql: str, params: list[Params]) -> None: ...

    @abstractmethod
    def is_database_error(self, error: BaseException) -> bool: ...

    def is_stale(self, conn: C, error: BaseException) -> bool:
        """Whether a pooled connection failed because the server dropped it while it
        was idle (a restart): the transaction can run again on a fresh one."""
        return False

    def run(self, work: Callable[[Tx], T], write: bool = True) -> T:
        """Run `work` in one transaction, committed when it returns."""
        for attempt in (1, 2):
            conn, pooled = self._checkout()
            tx = Tx(self, conn)
            try:
                self.begin(conn, write)
                result = work(tx)
                self.commit(conn)
            except BaseException as error:
                database_error = self.is_database_error(error)
                retry = database_error and attempt == 1 and pooled and tx.statements == 0
                retry = retry and self.is_stale(conn, error)
                self.disconnect(conn)
                if retry:
                    self._drop_idle()
                    continue
                if not database_error:
                    raise
                raise self.unavailable(error) from error
            self._checkin(conn)
            return result
        raise AssertionError("unreachable")

    def unavailable(self, error: BaseException) -> StoreUnavailable:
        reason = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
        return StoreUnavailable(f"job database {self.name}: {reason or type(error).__name__}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._drop_idle()

    def _checkout(self) -> tuple[C, bool]:
        with self._lock:
            if self._closed:
                raise StoreUnavailable(f"job database {self.name}: the store is closed")
            if self._idle:
                return self._idle.pop(), True
        try:
            return self.connect(), False
        except StoreUnavailable:
            raise
        except Exception as error:
            if self.is_database_error(error) or isinstance(error, OSError):
                raise self.unavailable(error) from error
            raise

    def _checkin(self, conn: C) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        self.disconnect(conn)

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self.disconnect(conn)
