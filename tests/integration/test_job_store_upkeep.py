"""The job store's queue-wide upkeep: leases that ran out, attempts used up, jobs past
their time-to-live, statistics, webhook deliveries; and a PostgreSQL restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.store import (
    JobState,
    JobStore,
    StoreUnavailable,
    WebhookAttemptRecord,
    WebhookDelivery,
    open_store,
)
from tests.integration.test_job_store import new_job, submit
from tests.pg import FakeClock, PostgresServer

HOOK = "https://example.com/hook"


def run(store: JobStore, replica: str = "replica-1", lease: float = 30) -> str:
    job = store.claim(replica, lease)
    assert job is not None
    return job.job_id


def test_jobs_whose_lease_ran_out_go_back_to_the_queue(store: JobStore, clock: FakeClock) -> None:
    renewed, abandoned = submit(store).job_id, submit(store).job_id
    assert {run(store), run(store)} == {renewed, abandoned}
    clock.advance(20)
    store.renew(renewed, "replica-1", 30)
    assert store.requeue_expired(3, 60) == []
    clock.advance(15)

    assert store.requeue_expired(3, 60) == [abandoned]
    requeued = store.get(abandoned)
    assert requeued is not None
    assert requeued.state is JobState.QUEUED and requeued.attempts == 1
    assert requeued.started_at is None and requeued.lease_expires_at is None
    assert requeued.replica == "replica-1"  # who ran the last attempt
    assert store.queue_position(abandoned) == 1
    assert list(store.read_audio(abandoned)) == [b"RIFF...."]
    assert store.get(renewed).state is JobState.RUNNING  # type: ignore[union-attr]
    assert store.requeue_expired(3, 60) == []


def test_a_job_fails_once_its_attempts_are_used_up(store: JobStore, clock: FakeClock) -> None:
    job = submit(store, new_job(webhook_url=HOOK)).job_id
    for attempt in (1, 2):
        assert run(store, f"replica-{attempt}") == job
        clock.advance(31)
        assert store.requeue_expired(2, 60) == [job]

    failed = store.get(job)
    assert failed is not None
    assert failed.state is JobState.FAILED and failed.attempts == 2
    assert failed.error_code == "UNAVAILABLE"
    assert failed.error_message == ("the replicas running it stopped responding 2 times; giving up")
    assert failed.ended_at == clock.now and failed.expires_at == clock.now + 60
    assert failed.webhook_delivery is WebhookDelivery.PENDING
    assert list(store.read_audio(job)) == []
    assert store.claim("replica-3", 30) is None


def test_a_cancelled_job_whose_replica_died_ends_cancelled(
    store: JobStore, clock: FakeClock
) -> None:
    job = submit(store).job_id
    run(store)
    store.cancel(job, 60)
    clock.advance(31)
    assert store.requeue_expired(3, 60) == [job]
    cancelled = store.get(job)
    assert cancelled is not None
    assert cancelled.state is JobState.CANCELLED and cancelled.error_code == "CANCELLED"
    assert cancelled.ended_at == clock.now


def test_ended_jobs_expire_then_are_purged(store: JobStore, clock: FakeClock) -> None:
    job = submit(store, new_job(labels=(("team", "x"),), webhook_url=HOOK)).job_id
    clock.advance(1)
    waiting = submit(store).job_id
    assert run(store) == job
    store.append_event(job, "replica-1", b"event")
    store.finish(job, "replica-1", JobState.SUCCEEDED, 60, result=b"result")
    store.record_webhook_attempt(
        job, WebhookAttemptRecord(1, clock.now, 500, "HTTP 500"), WebhookDelivery.PENDING
    )
    clock.advance(59)
    assert store.expire(purge_after_seconds=100) == 0
    assert store.get(job).result == b"result"  # type: ignore[union-attr]

    clock.advance(2)
    assert store.expire(purge_after_seconds=100) == 1
    expired = store.get(job)
    assert expired is not None
    assert expired.state is JobState.EXPIRED and expired.result is None
    assert expired.webhook_attempts == ()
    assert store.events(job) == [] and list(store.read_audio(job)) == []
    assert [j.job_id for j in store.list(JobState.EXPIRED, labels=(("team", "x"),))] == [job]
    assert store.claim_webhooks(30, 10) == []  # an expired job's webhook is not sent
    assert store.expire(purge_after_seconds=100) == 0

    clock.advance(100)
    store.expire(purge_after_seconds=100)
    assert store.get(job) is None
    assert store.list(labels=(("team", "x"),)) == []
    assert store.get(waiting).state is JobState.QUEUED  # type: ignore[union-attr]


def test_stats_count_states_and_average_times(store: JobStore, clock: FakeClock) -> None:
    assert store.stats().queued == 0 and store.stats().oldest_queued_seconds == 0
    jobs = [submit(store).job_id for _ in range(5)]  # all submitted at t0
    clock.advance(10)
    first, second = run(store), run(store)  # both waited 10 s
    clock.advance(4)
    store.finish(first, "replica-1", JobState.SUCCEEDED, 60)  # processed in 4 s
    store.cancel(next(job for job in jobs if job not in (first, second)), 60)
    clock.advance(2)

    stats = store.stats()
    assert (stats.queued, stats.running, stats.succeeded, stats.cancelled, stats.failed) == (
        2,
        1,
        1,
        1,
        0,
    )
    assert stats.oldest_queued_seconds == pytest.approx(16)
    assert stats.average_queue_seconds == pytest.approx(10)
    assert stats.average_processing_seconds == pytest.approx(4)


def test_webhooks_are_held_while_one_replica_delivers(store: JobStore, clock: FakeClock) -> None:
    hooked = [submit(store, new_job(webhook_url=HOOK)).job_id for _ in range(3)]
    silent = submit(store).job_id
    for _ in range(4):
        run(store)
    for job in [*hooked, silent]:
        store.finish(job, "replica-1", JobState.SUCCEEDED, 600, result=b"r")

    first = store.claim_webhooks(hold_seconds=30, limit=2)
    assert len(first) == 2 and first[0].result == b"r"
    rest = store.claim_webhooks(hold_seconds=30, limit=10)
    assert {job.job_id for job in first + rest} == set(hooked)  # each once, never `silent`
    assert store.claim_webhooks(hold_seconds=30, limit=10) == []

    failing, delivered = first[0].job_id, first[1].job_id
    store.record_webhook_attempt(
        failing,
        WebhookAttemptRecord(1, clock.now, 503, "HTTP 503", 0.25),
        WebhookDelivery.PENDING,
        next_at=clock.now + 10,
    )
    store.record_webhook_attempt(
        delivered, WebhookAttemptRecord(1, clock.now, 204, "", 0.1), WebhookDelivery.DELIVERED
    )
    clock.advance(11)
    assert [job.job_id for job in store.claim_webhooks(30, 10)] == [failing]
    store.record_webhook_attempt(
        failing, WebhookAttemptRecord(2, clock.now, 0, "timed out", 5.0), WebhookDelivery.FAILED
    )
    gave_up = store.get(failing)
    assert gave_up is not None and gave_up.webhook_delivery is WebhookDelivery.FAILED
    assert gave_up.webhook_attempts == (
        WebhookAttemptRecord(1, clock.now - 11, 503, "HTTP 503", 0.25),
        WebhookAttemptRecord(2, clock.now, 0, "timed out", 5.0),
    )
    clock.advance(31)  # the hold of the job nobody recorded an attempt for ran out
    assert [job.job_id for job in store.claim_webhooks(30, 10)] == [rest[0].job_id]
    assert store.get(delivered).webhook_delivery is WebhookDelivery.DELIVERED  # type: ignore[union-attr]
    clock.advance(1000)
    assert [job.job_id for job in store.claim_webhooks(30, 10)] == [rest[0].job_id]


def test_a_postgresql_restart_costs_no_call(tmp_path: Path) -> None:
    """Pooled connections the restart dropped are replaced; while the server is down,
    calls fail with StoreUnavailable, and work again once it is back."""
    server = PostgresServer.start_new()
    store = open_store(server.url(), tmp_path)
    try:
        store.migrate()
        job = submit(store).job_id
        server.stop()
        server.start()
        assert store.get(job) is not None
        server.stop()
        with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1"):
            store.get(job)
        server.start()
        assert store.get(job) is not None
    finally:
        store.close()
        server.close()
