"""The job store on real databases (SQLite and PostgreSQL): submitting, reading,
listing, schema migrations, and how an unreachable database fails.

Running jobs are in test_job_store_running.py, upkeep in test_job_store_upkeep.py.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.store import (
    JobRecord,
    JobState,
    JobStore,
    NewJob,
    Page,
    StoreUnavailable,
    describe,
    open_store,
)
from tests.pg import KINDS, FakeClock, PostgresServer, free_port


def new_job(
    job_id: str = "",
    client: str = "client-a",
    key: str = "",
    labels: tuple[tuple[str, str], ...] = (),
    webhook_url: str = "",
) -> NewJob:
    return NewJob(
        job_id=job_id or uuid.uuid4().hex,
        client=client,
        options=b"\x08\x01options",
        filename="talk.wav",
        webhook_url=webhook_url,
        idempotency_key=key,
        labels=labels,
    )


def submit(store: JobStore, job: NewJob | None = None, audio: bytes = b"RIFF....") -> JobRecord:
    record, existing = store.submit(job or new_job(), [audio])
    assert not existing
    return record


def test_submit_stores_the_job_and_its_audio_in_chunks(store: JobStore, clock: FakeClock) -> None:
    chunks = [bytes([i]) * (1000 + i) for i in range(19)]  # more than one read batch
    job = new_job(labels=(("team", "b"), ("area", "a")), webhook_url="https://example.com/h")
    record, existing = store.submit(job, iter(chunks))

    assert not existing
    assert record.state is JobState.QUEUED
    assert record.audio_bytes == sum(map(len, chunks))
    assert record.submitted_at == clock.now
    stored = store.get(job.job_id)
    assert stored == record
    assert stored.labels == (("team", "b"), ("area", "a"))  # as given
    assert stored.options == job.options and stored.filename == "talk.wav"
    assert stored.webhook_url == "https://example.com/h"
    assert stored.result is None and stored.started_at is None and stored.attempts == 0
    assert list(store.read_audio(job.job_id)) == chunks
    assert store.get("unknown") is None
    assert list(store.read_audio("unknown")) == []


def test_an_idempotency_key_names_one_job_per_client(store: JobStore) -> None:
    first, existing = store.submit(new_job(key="k1"), [b"one"])
    assert not existing
    again, existing = store.submit(new_job(key="k1"), [b"two"])
    assert existing and again.job_id == first.job_id
    assert b"".join(store.read_audio(first.job_id)) == b"one"  # the retry stored nothing

    other_client, existing = store.submit(new_job(client="client-b", key="k1"), [b"x"])
    assert not existing and other_client.job_id != first.job_id
    no_key = [store.submit(new_job(), [b"x"])[0].job_id for _ in range(2)]
    assert len(set(no_key)) == 2  # no key, no deduplication
    assert len(store.list()) == 4


def test_racing_submissions_with_one_key_make_one_job(store: JobStore) -> None:
    start = threading.Barrier(8)

    def race(_: int) -> tuple[JobRecord, bool]:
        start.wait()
        return store.submit(new_job(key="same"), [b"audio"] * 3)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(race, range(8)))

    assert len({record.job_id for record, _ in answers}) == 1
    assert sorted(existing for _, existing in answers) == [False] + [True] * 7
    assert len(store.list()) == 1


def test_list_pages_newest_first_with_state_and_label_filters(
    store: JobStore, clock: FakeClock
) -> None:
    ids = []
    for i in range(200):
        if i % 3 == 0:
            clock.advance(1)  # some jobs share a submission time: job_id breaks the tie
        labels = (("parity", "odd" if i % 2 else "even"),) + (
            (("five", "yes"),) if i % 5 == 0 else ()
        )
        ids.append(submit(store, new_job(job_id=f"job-{i:03}", labels=labels)).job_id)
    running = store.claim("replica-1", 30)
    assert running is not None
    newest_first = list(reversed(ids))

    seen: list[str] = []
    after: Page | None = None
    while page := store.list(limit=17, after=after):
        assert len(page) <= 17
        seen += [job.job_id for job in page]
        after = Page(page[-1].submitted_at, page[-1].job_id)
    assert seen == newest_first

    both = store.list(labels=(("parity", "even"), ("five", "yes")), limit=1000)
    assert [job.job_id for job in both] == [f"job-{i:03}" for i in range(190, -1, -10)]
    assert both[0].labels == (("parity", "even"), ("five", "yes"))
    assert store.list(labels=(("parity", "even"), ("parity", "odd"))) == []
    assert [job.job_id for job in store.list(JobState.RUNNING)] == ["job-000"]
    queued = store.list(JobState.QUEUED, labels=(("five", "yes"),), limit=5)
    assert [job.job_id for job in queued] == [f"job-{i:03}" for i in (195, 190, 185, 180, 175)]


def test_list_leaves_results_out(store: JobStore) -> None:
    job = submit(store)
    claimed = store.claim("replica-1", 30)
    assert claimed is not None
    assert store.finish(job.job_id, "replica-1", JobState.SUCCEEDED, 60, result=b"result")
    assert store.get(job.job_id).result == b"result"  # type: ignore[union-attr]
    [listed] = store.list()
    assert listed.result is None and listed.state is JobState.SUCCEEDED


def test_queue_position_counts_the_jobs_claimed_before(store: JobStore, clock: FakeClock) -> None:
    jobs = []
    for _ in range(4):
        clock.advance(1)
        jobs.append(submit(store).job_id)
    assert [store.queue_position(job_id) for job_id in jobs] == [1, 2, 3, 4]
    store.claim("replica-1", 30)
    assert [store.queue_position(job_id) for job_id in jobs] == [0, 1, 2, 3]
    store.cancel(jobs[2], 60)
    assert [store.queue_position(job_id) for job_id in jobs] == [0, 1, 0, 2]
    assert store.queue_position("unknown") == 0


def test_migrating_again_changes_nothing(store: JobStore) -> None:
    job = submit(store)
    store.migrate()
    store.migrate()
    assert store.get(job.job_id) == job


def test_a_database_from_a_newer_orchestrator_is_refused(tmp_path: Path) -> None:
    store = open_store("", tmp_path)
    store.migrate()
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,), (2,)]
        conn.execute("INSERT INTO schema_version VALUES (999, 0)")
    with pytest.raises(StoreUnavailable, match="schema version 999, newer"):
        store.migrate()
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_replicas_starting_together_migrate_once(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    """Four stores migrate an empty database at once (advisory lock on PostgreSQL,
    the write lock on SQLite); all of them then work."""
    if kind == "sqlite":
        url = f"sqlite://{tmp_path}/shared.sqlite3"
    else:
        server = request.getfixturevalue("pg_server")
        assert isinstance(server, PostgresServer)
        url = server.create_database(f"migrate_{uuid.uuid4().hex[:12]}")
    stores = [open_store(url, tmp_path) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda store: store.migrate(), stores))
        record = submit(stores[0])
        assert [store.get(record.job_id) for store in stores] == [record] * 4
    finally:
        for store in stores:
            store.close()


def test_an_unreachable_postgresql_fails_fast_without_its_password(tmp_path: Path) -> None:
    store = open_store(f"postgresql://app:s3cret@127.0.0.1:{free_port()}/jobs", tmp_path)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        store.migrate()
    assert time.monotonic() - started < 3
    message = str(caught.value)
    assert "postgresql://app:***@127.0.0.1:" in message and "s3cret" not in message
    assert "refused" in message.lower()
    with pytest.raises(StoreUnavailable):
        store.get("any")


def test_a_sqlite_file_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    for store in (
        open_store("", tmp_path / "a-file" / "data"),
        open_store(f"sqlite://{tmp_path}/a-file/jobs.sqlite3", tmp_path),
    ):
        with pytest.raises(StoreUnavailable, match=r"job database .*a-file"):
            store.migrate()
        store.close()


def test_open_store_understands_these_urls(tmp_path: Path) -> None:
    default = open_store("", tmp_path)
    default.migrate()
    default.close()
    assert (tmp_path / "jobs.sqlite3").exists()
    assert open_store("sqlite", tmp_path).kind == "sqlite"
    named = open_store(f"sqlite://{tmp_path}/elsewhere/queue.db", tmp_path)
    named.migrate()
    named.close()
    assert (tmp_path / "elsewhere" / "queue.db").exists()
    assert open_store("postgres://db.example/jobs", tmp_path).kind == "postgresql"
    for bad in ("sqlite://relative.db", "mysql://db/jobs", "jobs.sqlite3"):
        with pytest.raises(ValueError, match="job store URL"):
            open_store(bad, tmp_path)


def test_describe_masks_passwords() -> None:
    assert describe("postgresql://app:pw@db:5432/jobs") == "postgresql://app:***@db:5432/jobs"
    assert describe("postgresql://app@db/jobs?password=pw&sslmode=require") == (
        "postgresql://app@db/jobs?password=***&sslmode=require"
    )
    assert describe("postgresql://db/jobs") == "postgresql://db/jobs"
    assert describe("sqlite:///var/jobs.sqlite3") == "sqlite:///var/jobs.sqlite3"


def test_a_job_cycle_takes_a_few_milliseconds_on_sqlite(tmp_path: Path) -> None:
    store = open_store("", tmp_path)
    store.migrate()
    cycles = 20
    started = time.perf_counter()
    for _ in range(cycles):
        job = submit(store)
        assert store.claim("replica-1", 30) is not None
        for _ in range(10):
            store.append_event(job.job_id, "replica-1", b"event", stage=2, progress=b"p")
        assert store.finish(job.job_id, "replica-1", JobState.SUCCEEDED, 60, result=b"r")
    per_cycle = (time.perf_counter() - started) / cycles
    store.close()
    assert per_cycle < 0.025  # about 1 ms here; a margin for slow CI disks
