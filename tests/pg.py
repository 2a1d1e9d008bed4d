"""A real, throwaway PostgreSQL server for tests, and job stores to test against.

`PostgresServer.start_new()` runs Debian's server binaries (`make testdata` installs
them) in a temporary directory, listening on a free port of 127.0.0.1 with trust
authentication and fsync off (nothing it holds needs to survive). As root, the server
runs as the `postgres` system user, since PostgreSQL refuses to run as root. `stop()`
and `start()` take the same server down and up again (a database outage in the middle
of work); `close()` removes it. Without the binaries, `start_new` skips the test.

`open_test_store` opens a store of either kind, on SQLite in the test's directory or
on an empty PostgreSQL schema in the session's server (`pg_url` in tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from orchestrator.store import JobStore, open_store

DATABASE = "whospoke"
START_TIMEOUT_SECONDS = 30


def server_binaries() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl."""
    found = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if (path.parent / "pg_ctl").exists()
    ]
    versions = sorted(
        found, key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0
    )
    return versions[-1] if versions else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


KINDS = ["sqlite", "postgresql"]
"""The job stores every store test runs on."""


class PostgresServer:
    """One PostgreSQL server in its own temporary directory."""

    def __init__(self, binaries: Path, root: Path, port: int) -> None:
        self.binaries = binaries
        self.root = root
        self.port = port
        self.data = root / "data"
        self.running = False

    @classmethod
    def start_new(cls) -> PostgresServer:
        """initdb, start and create the `whospoke` database; skips the test when no
        PostgreSQL is installed."""
        binaries = server_binaries()
        if binaries is None:
            pytest.skip(
                "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin"
                " (`make testdata` installs Debian's postgresql)"
            )
        server = cls(binaries, Path(tempfile.mkdtemp(prefix="whospoke-pg-")), free_port())
        try:
            server._init()
            server.start()
            server.create_database(DATABASE)
        except BaseException:
            server.close()
            raise
        return server

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        """Run a server binary, as `postgres` when we are root."""
        command = [str(self.binaries / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, cwd=self.root, capture_output=True, text=True)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr.strip()}\n{tail}")

    def _init(self) -> None:
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            os.chown(self.root, postgres.pw_uid, postgres.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "-o",
            options,
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`immediate`: as if it crashed); `start()` starts it again."""
        if self.running:
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w")
            self.running = False

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def reset_database(url: str) -> None:
    """Drop every table, so the next store migrates an empty database."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


class FakeClock:
    """A clock that moves only when told, for leases and time-to-live without sleeping."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextlib.contextmanager
def open_test_store(
    request: pytest.FixtureRequest, kind: str, tmp_path: Path, clock: FakeClock | None = None
) -> Iterator[JobStore]:
    """A migrated, empty store of `kind` ("sqlite" or "postgresql"), closed afterwards.
    PostgreSQL comes from the session's server (started on first use)."""
    now = clock if clock is not None else time.time
    if kind == "sqlite":
        store = open_store("", tmp_path, now)
    else:
        url = str(request.getfixturevalue("pg_url"))
        reset_database(url)
        store = open_store(url, tmp_path, now)
    try:
        store.migrate()
        yield store
    finally:
        store.close()
