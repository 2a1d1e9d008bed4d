"""Shared fixtures: real sample audio, and in-process servers on port 0."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.pg import PostgresServer
from whospoke.common.audio import Samples
from whospoke.common.decode import decode_audio
from whospoke.evaluation import sample_path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
# Orchestrators the tests start keep their jobs database here, not in the user's data directory.
os.environ.setdefault("WHOSPOKE_DATA_DIR", tempfile.mkdtemp(prefix="whospoke-test-data-"))


@pytest.fixture(scope="session")
def sample_audio() -> Samples:
    """pyannote's sample.wav: 30 s, two speakers, decoded to 16 kHz mono."""
    return decode_audio(sample_path())


async def collect(stream: AsyncIterator[object]) -> list[object]:
    return [item async for item in stream]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session (tests/pg.py); skips when none is installed.
    Tests that stop it should start their own (`PostgresServer.start_new()`)."""
    server = PostgresServer.start_new()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def pg_url(pg_server: PostgresServer) -> str:
    """URL of the session server's `whospoke` database (shared: reset what you use)."""
    return pg_server.url()
