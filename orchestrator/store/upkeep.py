"""How jobs end (finished, cancelled, deleted, abandoned by a replica that stopped
responding, expired), and the queue-wide upkeep every replica runs now and then:
leases that ran out, jobs past their time-to-live, statistics, webhooks due.

Several replicas may run the same upkeep at once: rows are picked with
`Engine.lock_rows` so each one is handled by one of them.
"""

from __future__ import annotations

import builtins
from dataclasses import astuple

from orchestrator.store.base import (
    JobRecord,
    JobState,
    QueueStats,
    WebhookAttemptRecord,
    WebhookDelivery,
)
from orchestrator.store.engine import Tx
from orchestrator.store.schema import CHILD_TABLES
from orchestrator.store.sql import ENDED_SQL, SqlJobs

UNAVAILABLE_CODE = "UNAVAILABLE"
CANCELLED_CODE = "CANCELLED"
CANCELLED_MESSAGE = "cancelled by a client"

_END_SQL = (
    "UPDATE jobs SET state = ?, result = ?, error_code = ?, error_message = ?,"
    " ended_at = ?, expires_at = ?, lease_expires_at = NULL,"
    " webhook_delivery = CASE WHEN webhook_url = '' THEN 0 ELSE 1 END,"
    " webhook_next_at = CASE WHEN webhook_url = '' THEN NULL ELSE ? END"
    " WHERE job_id = ? AND state = ?"
)


class SqlJobStore(SqlJobs):
    """`JobStore` over an `Engine`: `SqlJobs` plus ending jobs and the upkeep."""

    def _end(
        self,
        tx: Tx,
        job_id: str,
        state: JobState,
        ttl_seconds: float,
        was: JobState,
        result: bytes | None = None,
        error: tuple[str, str] = ("", ""),
        replica: str | None = None,
    ) -> bool:
        """End a job that is in state `was` (and run by `replica`, when given): its
        audio goes, its webhook becomes due."""
        if not state.ended or state is JobState.EXPIRED:
            raise ValueError(f"state: {state.name} is not how a job ends")
        now = self._clock()
        params = [int(state), result, *error, now, now + ttl_seconds, now, job_id, int(was)]
        sql = _END_SQL
        if replica is not None:
            sql += " AND replica = ?"
            params.append(replica)
        if not tx.count(sql, params):
            return False
        tx.count("DELETE FROM job_audio WHERE job_id = ?", (job_id,))
        return True

    def finish(
        self,
        job_id: str,
        replica: str,
        state: JobState,
        ttl_seconds: float,
        result: bytes | None = None,
        error_code: str = "",
        error_message: str = "",
    ) -> bool:
        return self._db.run(
            lambda tx: self._end(
                tx,
                job_id,
                state,
                ttl_seconds,
                JobState.RUNNING,
                result=result,
                error=(error_code, error_message),
                replica=replica,
            )
        )

    def cancel(self, job_id: str, ttl_seconds: float) -> JobRecord | None:
        def work(tx: Tx) -> JobRecord | None:
            error = (CANCELLED_CODE, CANCELLED_MESSAGE)
            if not self._end(
                tx, job_id, JobState.CANCELLED, ttl_seconds, JobState.QUEUED, error=error
            ):
                tx.count(
                    "UPDATE jobs SET cancel_requested = 1 WHERE job_id = ? AND state = 2",
                    (job_id,),
                )
            return self._get(tx, job_id)

        return self._db.run(work)

    def delete(self, job_id: str) -> bool:
        def work(tx: Tx) -> bool:
            # The job's row first: on PostgreSQL its lock makes a concurrent
            # `append_event` either finish first or find the job gone.
            if not tx.count("DELETE FROM jobs WHERE job_id = ?", (job_id,)):
                return False
            for table in CHILD_TABLES:
                tx.count(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))
            return True

        return self._db.run(work)

    def requeue_expired(self, max_attempts: int, ttl_seconds: float) -> builtins.list[str]:
        def work(tx: Tx) -> builtins.list[str]:
            expired = tx.rows(
                "SELECT job_id, attempts, cancel_requested FROM jobs"
                f" WHERE state = 2 AND lease_expires_at < ? ORDER BY job_id{self._db.lock_rows}",
                (self._clock(),),
            )
            for job_id, attempts, cancel_requested in expired:
                self._requeue(
                    tx, job_id, attempts, bool(cancel_requested), max_attempts, ttl_seconds
                )
            return [row[0] for row in expired]

        return self._db.run(work)

    def _requeue(
        self,
        tx: Tx,
        job_id: str,
        attempts: int,
        cancel_requested: bool,
        max_attempts: int,
        ttl_seconds: float,
    ) -> None:
        running = JobState.RUNNING
        if cancel_requested:
            error = (CANCELLED_CODE, CANCELLED_MESSAGE)
            self._end(tx, job_id, JobState.CANCELLED, ttl_seconds, running, error=error)
        elif attempts >= max_attempts:
            message = f"the replicas running it stopped responding {attempts} times; giving up"
            error = (UNAVAILABLE_CODE, message)
            self._end(tx, job_id, JobState.FAILED, ttl_seconds, running, error=error)
        else:
            # `replica` stays: the one that ran the last attempt, as `JobRecord` says.
            tx.count(
                "UPDATE jobs SET state = 1, started_at = NULL, lease_expires_at = NULL"
                " WHERE job_id = ? AND state = 2",
                (job_id,),
            )

    def expire(self, purge_after_seconds: float) -> int:
        def work(tx: Tx) -> int:
            now = self._clock()
            lock = self._db.lock_rows
            expired = [
                row[0]
                for row in tx.rows(
                    f"SELECT job_id FROM jobs WHERE state IN {ENDED_SQL} AND expires_at <= ?{lock}",
                    (now,),
                )
            ]
            tx.many(
                "UPDATE jobs SET state = 6, result = NULL WHERE job_id = ?",
                [(job_id,) for job_id in expired],
            )
            for table in ("job_events", "job_audio", "webhook_attempts"):
                tx.many(f"DELETE FROM {table} WHERE job_id = ?", [(job_id,) for job_id in expired])
            purged = tx.rows(
                f"SELECT job_id FROM jobs WHERE state = 6 AND expires_at <= ?{lock}",
                (now - purge_after_seconds,),
            )
            for table in ("jobs", "job_labels"):
                tx.many(f"DELETE FROM {table} WHERE job_id = ?", purged)
            return len(expired)

        return self._db.run(work)

    def stats(self) -> QueueStats:
        def work(tx: Tx) -> QueueStats:
            counts = {
                JobState(state): int(n)
                for state, n in tx.rows("SELECT state, count(*) FROM jobs GROUP BY state")
            }
            oldest, queue, processing = tx.rows(
                "SELECT min(CASE WHEN state = 1 THEN submitted_at END),"
                " avg(started_at - submitted_at),"
                " avg(ended_at - started_at)"
                " FROM jobs"
            )[0]
            now = self._clock()
            return QueueStats(
                queued=counts.get(JobState.QUEUED, 0),
                running=counts.get(JobState.RUNNING, 0),
                succeeded=counts.get(JobState.SUCCEEDED, 0),
                failed=counts.get(JobState.FAILED, 0),
                cancelled=counts.get(JobState.CANCELLED, 0),
                oldest_queued_seconds=0.0 if oldest is None else max(0.0, now - float(oldest)),
                average_queue_seconds=float(queue or 0.0),
                average_processing_seconds=float(processing or 0.0),
            )

        return self._db.run(work, write=False)

    def claim_webhooks(self, hold_seconds: float, limit: int) -> builtins.list[JobRecord]:
        def work(tx: Tx) -> builtins.list[JobRecord]:
            now = self._clock()
            due = tx.rows(
                f"SELECT job_id FROM jobs WHERE webhook_delivery = 1 AND state IN {ENDED_SQL}"
                " AND webhook_next_at <= ? ORDER BY webhook_next_at, job_id"
                f" LIMIT ?{self._db.lock_rows}",
                (now, limit),
            )
            tx.many(
                "UPDATE jobs SET webhook_next_at = ? WHERE job_id = ?",
                [(now + hold_seconds, job_id) for (job_id,) in due],
            )
            jobs = [self._get(tx, job_id) for (job_id,) in due]
            return [job for job in jobs if job is not None]

        return self._db.run(work)

    def record_webhook_attempt(
        self,
        job_id: str,
        attempt: WebhookAttemptRecord,
        delivery: WebhookDelivery,
        next_at: float | None = None,
    ) -> None:
        """Nothing is recorded once the job has expired or is deleted. A PENDING delivery
        without `next_at` is due at once."""
        if delivery is WebhookDelivery.PENDING:
            next_at = self._clock() if next_at is None else next_at
        else:
            next_at = None

        def work(tx: Tx) -> None:
            if tx.count(
                "UPDATE jobs SET webhook_delivery = ?, webhook_next_at = ?"
                f" WHERE job_id = ? AND state IN {ENDED_SQL}",
                (int(delivery), next_at, job_id),
            ):
                tx.count(
                    "INSERT INTO webhook_attempts"
                    " (job_id, number, time, http_status, error, duration)"
                    " VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (job_id, number) DO NOTHING",
                    (job_id, *astuple(attempt)),
                )

        self._db.run(work)
