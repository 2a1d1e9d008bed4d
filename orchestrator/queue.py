"""The durable job queue's worker: claims jobs from the store and runs them.

Each replica claims a job only when it has a free slot (the same slots `Process`
calls use, so `--max-concurrent-jobs` bounds both), runs it with the same
`JobRunner` as `Process`, and streams its events into the store. While it runs,
the replica renews the job's lease; when a replica dies the lease runs out and
any replica's maintenance pass re-queues the job (`requeue_expired`). The same
pass expires finished jobs past their time-to-live and refreshes the queue
statistics. Nothing here blocks the event loop: every store call runs in a
worker thread, and a store that is down only delays the queue (jobs resume
when it returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.config import JobsConfig
from orchestrator.convert import event_to_pb
from orchestrator.eventlog import Ending, EventWriter, JobSignals
from orchestrator.jobs import JobRunner
from orchestrator.options import options_from_pb
from orchestrator.store import JobRecord, JobState, JobStore, Lease, QueueStats, StoreUnavailable
from whospoke.common import tracing
from whospoke.common.errors import WhospokeError
from whospoke.common.limiter import Limiter
from whospoke.v1 import orchestrator_pb2 as pb

logger = logging.getLogger(__name__)

PURGE_EXPIRED_AFTER = 7 * 86400.0
"""How long an expired job's id still answers "expired" before it is forgotten."""


@dataclass
class _Running:
    record: JobRecord
    task: asyncio.Task[None] | None = None
    reason: str = ""
    """Why its task was cancelled: "cancel" (a client), "lost" (no longer ours), "shutdown"."""
    ticketed: bool = False
    """The runner holds (or waits for) a limiter slot for it; until then it counts as busy."""
    got_slot: bool = False
    """The runner has sent an event: it was given (or queued for) a slot."""
    finishing: bool = False
    """Its ending is decided and being stored: further cancels are ignored."""


@dataclass
class QueueState:
    """What the servicer reads without touching the store."""

    stats: QueueStats = field(default_factory=QueueStats)
    running_here: int = 0


class JobQueue:
    """The worker of one replica; `start`/`stop` follow the server's life (`Background`)."""

    def __init__(
        self,
        store: JobStore,
        runner: JobRunner,
        limiter: Limiter,
        config: JobsConfig,
        spool_dir: Path,
        signals: JobSignals,
        on_stats: Callable[[QueueStats, int], None] = lambda stats, here: None,
        on_end: Callable[[JobRecord, JobState], None] = lambda record, state: None,
    ) -> None:
        self.store = store
        self.config = config
        self.signals = signals
        self.state = QueueState()
        self._runner = runner
        self._limiter = limiter
        self._spool_dir = spool_dir
        self._on_stats = on_stats
        self._on_end = on_end
        self._running: dict[str, _Running] = {}
        self._wake = asyncio.Event()
        self._claims: asyncio.Task[None] | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._claiming = True

    def wake(self) -> None:
        """Something changed here (a job submitted, a slot freed): look for work now."""
        self._wake.set()

    def cancel_local(self, job_id: str) -> bool:
        """Cancel a job if this replica runs it (a client asked); True when it did."""
        running = self._running.get(job_id)
        if running is None or running.task is None:
            return False
        self._cancel(running, "cancel")
        return True

    async def start(self) -> None:
        self._claims = asyncio.create_task(self._claim_loop(), name="job-claims")
        self._maintenance = asyncio.create_task(self._maintain_loop(), name="job-maintenance")

    async def stop(self, grace: float) -> None:
        """Stop claiming; give running jobs `grace` seconds, then hand them back to the
        queue (another replica, or this one restarted, runs them again). Bounded even when
        the store is down: what cannot be handed back waits for its lease to expire."""
        self._claiming = False
        self.wake()
        if self._claims is not None:  # let an in-flight claim land, then the loop ends
            await asyncio.wait({self._claims}, timeout=grace + 5)
        tasks = {r.task for r in self._running.values() if r.task is not None}
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for running in list(self._running.values()):
            self._cancel(running, "shutdown")
        leftover = {r.task for r in self._running.values() if r.task is not None}
        if leftover:
            _, stuck = await asyncio.wait(leftover, timeout=5)
            for task in stuck:  # storing their ending is stuck on the store: give up
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        loops = [t for t in (self._claims, self._maintenance) if t is not None]
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    def _has_slot(self) -> bool:
        limiter = self._limiter
        starting = sum(1 for r in self._running.values() if not r.ticketed)
        busy = limiter.running + limiter.queued + starting
        return self._claiming and busy < limiter.max_running

    async def _claim_loop(self) -> None:
        while self._claiming:
            claimed = None
            if self._has_slot():
                try:
                    claimed = await asyncio.to_thread(
                        self.store.claim, self.config.replica, self.config.lease_seconds
                    )
                except StoreUnavailable as error:
                    logger.warning("job store unavailable, no job claimed: %s", error)
                except Exception:
                    logger.exception("claiming a job failed")
            if claimed is not None and not self._claiming:
                await self._hand_back(claimed.job_id)  # claimed as shutdown began
            elif claimed is not None:
                self._launch(claimed)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_seconds):
                    await self._wake.wait()

    def _launch(self, record: JobRecord) -> None:
        logger.info("job %s: attempt %d on %s", record.job_id, record.attempts, record.replica)
        stale = self._running.get(record.job_id)
        if stale is not None:  # re-queued while we were cut off, and claimed again: ours now
            self._cancel(stale, "lost")
        running = _Running(record)
        self._running[record.job_id] = running
        running.task = asyncio.create_task(self._execute(running), name=f"job-{record.job_id}")
        self.state.running_here = len(self._running)

    def _cancel(self, running: _Running, reason: str) -> None:
        if running.finishing or running.task is None or running.task.done():
            return
        running.reason = running.reason or reason
        running.task.cancel()

    async def _hand_back(self, job_id: str) -> None:
        """Return a job to the queue at shutdown: one try, else its lease will expire."""
        try:
            await asyncio.to_thread(self.store.release, job_id, self.config.replica)
        except StoreUnavailable as error:
            logger.warning("job %s not handed back (%s); its lease will expire", job_id, error)

    async def _maintain_loop(self) -> None:
        period = max(0.05, min(self.config.lease_seconds / 3, 5.0))
        while True:
            try:
                await self._renew_leases()
                await self._maintain()
            except StoreUnavailable as error:
                logger.warning("job store unavailable during maintenance: %s", error)
            except Exception:
                logger.exception("job queue maintenance failed; trying again")
            await asyncio.sleep(period)

    async def _renew_leases(self) -> None:
        for job_id, running in list(self._running.items()):
            if running.finishing:
                continue
            lease = await asyncio.to_thread(
                self.store.renew, job_id, self.config.replica, self.config.lease_seconds
            )
            if lease is Lease.CANCEL:
                self._cancel(running, "cancel")
            elif lease is Lease.LOST:
                self._cancel(running, "lost")

    async def _maintain(self) -> None:
        store, config = self.store, self.config
        requeued = await asyncio.to_thread(
            store.requeue_expired, config.max_attempts, config.result_ttl_seconds
        )
        if requeued:
            logger.warning("re-queued jobs whose replica stopped renewing: %s", requeued)
            self.wake()
            for job_id in requeued:
                self.signals.notify(job_id)
        await asyncio.to_thread(store.expire, PURGE_EXPIRED_AFTER)
        await self.refresh_stats()

    async def refresh_stats(self) -> QueueStats:
        stats = await asyncio.to_thread(self.store.stats)
        self.state.stats = stats
        self.state.running_here = len(self._running)
        self._on_stats(stats, len(self._running))
        return stats

    async def _execute(self, running: _Running) -> None:
        record = running.record
        source = self._spool_dir / f"job-{record.job_id}-{record.attempts}.src"
        writer = EventWriter(
            self.store,
            record.job_id,
            self.config.replica,
            self.config.result_ttl_seconds,
            self.signals,
            on_lost=lambda: self._cancel(running, "lost"),
        )
        try:
            ending: Ending | None
            try:
                with tracing.job_span(record.job_id, record.attempts):  # its backend calls' parent
                    ending = await self._attempt(running, writer, source)
            except asyncio.CancelledError:
                ending = _cancelled_ending(running.reason)
            running.finishing = True
            if _hand_back_instead(ending, running.got_slot, self._claiming):
                ending, running.reason = None, "shutdown"
            await self._end(running, writer, ending)
        finally:
            writer.stop_now()  # a no-op unless a forced shutdown cut the ending short
            if self._running.get(record.job_id) is running:
                del self._running[record.job_id]
            self.state.running_here = len(self._running)
            self.signals.notify(record.job_id)
            self.wake()
            await asyncio.to_thread(source.unlink, missing_ok=True)

    async def _end(self, running: _Running, writer: EventWriter, ending: Ending | None) -> None:
        record = running.record
        if ending is None:
            await writer.abandon()
            if running.reason == "shutdown":
                await self._hand_back(record.job_id)
        elif await writer.finish(ending):
            self._on_end(record, ending.state)

    async def _attempt(self, running: _Running, writer: EventWriter, source: Path) -> Ending:
        record = running.record
        try:
            options = options_from_pb(pb.ProcessOptions.FromString(record.options))
            await asyncio.to_thread(_write_source, self.store, record.job_id, source)
            result = b""
            async for event in self._runner.run(lambda: source, options):
                running.ticketed = running.got_slot = True
                message = event_to_pb(event, time.time() - record.submitted_at)
                if message.HasField("result"):
                    _durable_timings(message.result, record)
                    result = message.result.SerializeToString()
                writer.put(message)
            return Ending(JobState.SUCCEEDED, result=result)
        except WhospokeError as error:
            return Ending(JobState.FAILED, error_code=error.code.name, error_message=str(error))
        except Exception as error:
            logger.exception("job %s failed", record.job_id)
            why = f"internal error: {type(error).__name__}: {error}"
            return Ending(JobState.FAILED, error_code="INTERNAL", error_message=why)
        finally:
            running.ticketed = True  # its slot, if any, is released: no longer "starting"


def _hand_back_instead(ending: Ending | None, got_slot: bool, claiming: bool) -> bool:
    """Whether a failure is this replica's circumstance, not the job's: a backend that
    stopped as we are stopping (`whospoke serve` stops them together), or `Process`
    calls that took every slot between the claim and the start. The job is queued again."""
    if ending is None or ending.state is not JobState.FAILED:
        return False
    if ending.error_code == "UNAVAILABLE" and not claiming:
        return True
    return ending.error_code == "RESOURCE_EXHAUSTED" and not got_slot


def _cancelled_ending(reason: str) -> Ending | None:
    """A client's cancel ends the job; a lost lease or a shutdown leave it to the queue."""
    if reason == "cancel":
        return Ending(
            JobState.CANCELLED, error_code="CANCELLED", error_message="cancelled by a client"
        )
    return None


def _write_source(store: JobStore, job_id: str, path: Path) -> None:
    """Copy the job's audio out of the store to a file the decoder can seek in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for chunk in store.read_audio(job_id):
            out.write(chunk)


def _durable_timings(result: pb.ProcessResult, record: JobRecord) -> None:
    """A durable job's wait is from submission, its total from submission to now."""
    started = record.started_at or record.submitted_at
    result.timings.queued_seconds += started - record.submitted_at
    result.timings.total_seconds += started - record.submitted_at
