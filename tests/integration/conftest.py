"""Fixtures of the job store tests: each runs on SQLite and on PostgreSQL, with a clock the
test moves (leases and time-to-live without sleeping)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.store import JobStore
from tests.pg import KINDS, FakeClock, open_test_store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[JobStore]:
    with open_test_store(request, request.param, tmp_path, clock) as opened:
        yield opened
