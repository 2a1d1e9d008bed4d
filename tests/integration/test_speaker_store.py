"""Enrolled voices in the job database, on SQLite and on PostgreSQL."""

from __future__ import annotations

from orchestrator.store import JobStore
from orchestrator.store.speakers import Voice
from tests.pg import FakeClock


def test_voices_are_stored_listed_replaced_and_deleted(store: JobStore, clock: FakeClock) -> None:
    speakers = store.speakers()
    alice = Voice("Alice", (0.25, -1.5, 3.0), "cam++", 12.5, 0.0)
    assert speakers.enroll(alice, replace=False)
    assert speakers.enroll(Voice("Bob", (1.0, 0.0, 0.0), "cam++", 4.0, 0.0), replace=False)
    assert not speakers.enroll(Voice("Alice", (9.0,), "other", 1.0, 0.0), replace=False)
    listed = speakers.list()
    assert [v.name for v in listed] == ["Alice", "Bob"]
    assert listed[0].embedding == (0.25, -1.5, 3.0)  # float32 round trip, exact here
    assert listed[0].enrolled_at == clock()
    assert speakers.enroll(Voice("Alice", (2.0,), "other", 6.0, 0.0), replace=True)
    assert speakers.list(("Alice", "Nobody")) == [Voice("Alice", (2.0,), "other", 6.0, clock())]
    assert speakers.delete("Bob") and not speakers.delete("Bob")
    assert [v.name for v in store.speakers().list()] == ["Alice"]
