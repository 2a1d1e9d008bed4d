"""The job store while jobs run: claims, leases, the event log, and how a job ends by
its replica's hand, a client's cancel or deletion. Ownership is the point: a replica
that no longer owns a job writes nothing to it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from orchestrator.store import JobState, JobStore, Lease, WebhookDelivery
from tests.integration.test_job_store import new_job, submit
from tests.pg import FakeClock


def test_claim_takes_the_oldest_queued_job(store: JobStore, clock: FakeClock) -> None:
    assert store.claim("replica-1", 30) is None
    later = submit(store, new_job(job_id="b-later"))
    clock.advance(-5)
    tie_b = submit(store, new_job(job_id="b-first", labels=(("k", "v"),)))
    tie_a = submit(store, new_job(job_id="a-first"))
    clock.advance(10)

    order = [store.claim("replica-1", 30) for _ in range(3)]
    assert [job.job_id for job in order if job] == [tie_a.job_id, tie_b.job_id, later.job_id]
    first = order[0]
    assert first is not None
    assert first.state is JobState.RUNNING and first.replica == "replica-1"
    assert first.attempts == 1 and first.started_at == clock.now
    assert first.lease_expires_at == clock.now + 30
    assert order[1] is not None and order[1].labels == (("k", "v"),)
    assert store.claim("replica-1", 30) is None


def test_replicas_claiming_at_once_take_each_job_once(store: JobStore) -> None:
    jobs = {submit(store).job_id for _ in range(20)}
    start = threading.Barrier(4)

    def claim_all(replica: int) -> list[str]:
        start.wait()
        claimed = []
        while job := store.claim(f"replica-{replica}", 30):
            claimed.append(job.job_id)
        return claimed

    with ThreadPoolExecutor(4) as pool:
        claims = [job_id for claimed in pool.map(claim_all, range(4)) for job_id in claimed]
    assert sorted(claims) == sorted(jobs)
    assert {job.replica for job in store.list(JobState.RUNNING, limit=100)} <= {
        f"replica-{i}" for i in range(4)
    }


def test_renew_extends_the_lease_of_its_owner_only(store: JobStore, clock: FakeClock) -> None:
    job = submit(store)
    store.claim("replica-1", 30)
    clock.advance(20)
    assert store.renew(job.job_id, "replica-1", 30) is Lease.HELD
    assert store.get(job.job_id).lease_expires_at == clock.now + 30  # type: ignore[union-attr]
    assert store.renew(job.job_id, "replica-2", 30) is Lease.LOST

    store.cancel(job.job_id, 60)
    assert store.renew(job.job_id, "replica-1", 30) is Lease.CANCEL
    assert store.finish(job.job_id, "replica-1", JobState.CANCELLED, 60)
    assert store.renew(job.job_id, "replica-1", 30) is Lease.LOST
    assert store.renew("unknown", "replica-1", 30) is Lease.LOST


def test_events_are_numbered_across_attempts_and_kept_from_lost_owners(
    store: JobStore, clock: FakeClock
) -> None:
    job = submit(store)
    assert store.append_event(job.job_id, "replica-1", b"early") == 0  # not running yet
    store.claim("replica-1", 30)
    sequences = [store.append_event(job.job_id, "replica-1", b"e%d" % i) for i in (1, 2)]
    assert sequences == [1, 2]
    assert store.append_event(job.job_id, "replica-1", b"e3", 3, b"progress", 12.5) == 3
    running = store.get(job.job_id)
    assert running is not None
    assert (running.stage, running.progress, running.audio_seconds) == (3, b"progress", 12.5)
    assert store.append_event(job.job_id, "replica-2", b"intruder") == 0

    clock.advance(31)  # replica-1 stops renewing: the job goes back to the queue
    assert store.requeue_expired(3, 60) == [job.job_id]
    assert store.append_event(job.job_id, "replica-1", b"too late") == 0
    again = store.claim("replica-2", 30)
    assert again is not None and again.attempts == 2 and again.replica == "replica-2"
    assert store.append_event(job.job_id, "replica-2", b"e4", stage=1) == 4
    assert store.append_event(job.job_id, "replica-1", b"stale") == 0

    assert store.events(job.job_id) == [(1, b"e1"), (2, b"e2"), (3, b"e3"), (4, b"e4")]
    assert store.events(job.job_id, after=2) == [(3, b"e3"), (4, b"e4")]
    assert store.events("unknown") == []


def test_finish_ends_the_job_for_its_owner_only(store: JobStore, clock: FakeClock) -> None:
    plain = submit(store)
    hooked = submit(store, new_job(webhook_url="https://example.com/hook"))
    store.claim("replica-1", 30)
    store.claim("replica-1", 30)
    clock.advance(5)

    assert not store.finish(plain.job_id, "replica-2", JobState.SUCCEEDED, 60, result=b"r")
    assert store.finish(plain.job_id, "replica-1", JobState.SUCCEEDED, 60, result=b"r")
    assert not store.finish(plain.job_id, "replica-1", JobState.FAILED, 60)  # ended already
    done = store.get(plain.job_id)
    assert done is not None
    assert done.state is JobState.SUCCEEDED and done.result == b"r"
    assert done.ended_at == clock.now and done.expires_at == clock.now + 60
    assert done.lease_expires_at is None
    assert done.webhook_delivery is WebhookDelivery.NONE
    assert list(store.read_audio(plain.job_id)) == []  # the job's audio goes when it ends

    assert store.finish(hooked.job_id, "replica-1", JobState.FAILED, 60, None, "INTERNAL", "boom")
    failed = store.get(hooked.job_id)
    assert failed is not None
    assert (failed.state, failed.error_code, failed.error_message) == (
        JobState.FAILED,
        "INTERNAL",
        "boom",
    )
    assert failed.result is None and failed.webhook_delivery is WebhookDelivery.PENDING
    with pytest.raises(ValueError, match="state"):
        store.finish(hooked.job_id, "replica-1", JobState.RUNNING, 60)


def test_release_hands_the_job_back_without_counting_the_attempt(store: JobStore) -> None:
    job = submit(store)
    store.claim("replica-1", 30)
    assert not store.release(job.job_id, "replica-2")
    assert store.release(job.job_id, "replica-1")
    released = store.get(job.job_id)
    assert released is not None
    assert released.state is JobState.QUEUED and released.attempts == 0
    assert released.started_at is None and released.lease_expires_at is None
    assert store.queue_position(job.job_id) == 1
    assert not store.release(job.job_id, "replica-1")
    assert list(store.read_audio(job.job_id)) == [b"RIFF...."]


def test_cancel_depends_on_where_the_job_is(store: JobStore, clock: FakeClock) -> None:
    queued = submit(store, new_job(webhook_url="https://example.com/hook"))
    clock.advance(1)
    running = submit(store)
    ended = submit(store)
    store.claim("replica-1", 30)  # queued was first: hand it back, claim the other two
    store.release(queued.job_id, "replica-1")
    store.cancel(queued.job_id, 60)
    assert {store.claim("replica-1", 30).job_id for _ in range(2)} == {  # type: ignore[union-attr]
        running.job_id,
        ended.job_id,
    }
    store.finish(ended.job_id, "replica-1", JobState.SUCCEEDED, 60, result=b"r")

    cancelled = store.get(queued.job_id)
    assert cancelled is not None and cancelled.state is JobState.CANCELLED
    assert cancelled.ended_at == clock.now and cancelled.expires_at == clock.now + 60
    assert cancelled.error_code == "CANCELLED"
    assert cancelled.webhook_delivery is WebhookDelivery.PENDING
    assert list(store.read_audio(queued.job_id)) == []

    asked = store.cancel(running.job_id, 60)
    assert asked is not None
    assert asked.state is JobState.RUNNING and asked.cancel_requested
    assert store.cancel(ended.job_id, 60) == store.get(ended.job_id)
    assert store.get(ended.job_id).state is JobState.SUCCEEDED  # type: ignore[union-attr]
    assert store.cancel("unknown", 60) is None


def test_delete_removes_the_job_and_all_it_holds(store: JobStore) -> None:
    job = submit(store, new_job(labels=(("team", "x"),)))
    store.claim("replica-1", 30)
    store.append_event(job.job_id, "replica-1", b"event")

    assert store.delete(job.job_id)
    assert store.get(job.job_id) is None
    assert store.events(job.job_id) == [] and list(store.read_audio(job.job_id)) == []
    assert store.list(labels=(("team", "x"),)) == []
    assert store.renew(job.job_id, "replica-1", 30) is Lease.LOST
    assert store.append_event(job.job_id, "replica-1", b"event") == 0
    assert not store.finish(job.job_id, "replica-1", JobState.SUCCEEDED, 60)
    assert not store.delete(job.job_id)
