"""The durable job store: `open_store` picks SQLite or PostgreSQL from a URL.

The interface and its records are in `orchestrator.store.base`; the backends load
on demand, so an orchestrator on SQLite never imports the PostgreSQL driver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from orchestrator.store.base import (
    JobRecord,
    JobState,
    JobStore,
    Lease,
    NewJob,
    Page,
    QueueStats,
    StoreUnavailable,
    WebhookAttemptRecord,
    WebhookDelivery,
)
from orchestrator.store.engine import describe
from whospoke.common.errors import Unavailable

__all__ = [
    "SQLITE_FILENAME",
    "JobRecord",
    "JobState",
    "JobStore",
    "Lease",
    "NewJob",
    "Page",
    "QueueStats",
    "StoreUnavailable",
    "WebhookAttemptRecord",
    "WebhookDelivery",
    "describe",
    "in_thread",
    "open_store",
]

T = TypeVar("T")

SQLITE_FILENAME = "jobs.sqlite3"
"""The default store's file, in the data directory."""


def open_store(url: str, data_dir: Path, clock: Callable[[], float] = time.time) -> JobStore:
    """The store `url` names: "" or "sqlite" for `data_dir/jobs.sqlite3`,
    "sqlite:///ABSOLUTE/PATH" for that file, "postgresql://..." (or "postgres://...")
    for a PostgreSQL database. Connects lazily: call `migrate()` first, which raises
    `StoreUnavailable` when the database cannot be reached. ValueError for any other URL."""
    if url in ("", "sqlite"):
        from orchestrator.store.sqlite import SqliteJobStore

        return SqliteJobStore(data_dir / SQLITE_FILENAME, clock)
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if not path.startswith("/") or path == "/":
            raise ValueError(
                f"job store URL {url!r}: a SQLite URL names an absolute path,"
                " as in sqlite:///var/lib/whospoke/jobs.sqlite3"
            )
        from orchestrator.store.sqlite import SqliteJobStore

        return SqliteJobStore(Path(path), clock)
    if url.startswith(("postgresql://", "postgres://")):
        from orchestrator.store.postgres import PostgresJobStore

        return PostgresJobStore(url, clock)
    raise ValueError(
        f"job store URL {describe(url)!r}: expected empty or 'sqlite' (a file in the data"
        " directory), 'sqlite:///ABSOLUTE/PATH' or 'postgresql://USER@HOST[:PORT]/DATABASE'"
    )


async def in_thread(call: Callable[[], T]) -> T:
    """Run a blocking store call in a thread; a store that is down is UNAVAILABLE."""
    try:
        return await asyncio.to_thread(call)
    except StoreUnavailable as error:
        raise Unavailable(f"job store: {error}") from None
