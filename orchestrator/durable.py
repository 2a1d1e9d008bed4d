"""Durable jobs wired together: the store, this replica's queue worker, webhooks, metrics.

The store is opened when the service loads (a database that cannot be reached
then stops the start with its reason and a non-zero exit, rather than a server
that accepts jobs it cannot keep); the worker and the webhook sender run from
then until shutdown, when running jobs are handed back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from pathlib import Path

from orchestrator.config import JobsConfig
from orchestrator.eventlog import JobSignals
from orchestrator.jobs import JobRunner
from orchestrator.queue import JobQueue
from orchestrator.queue_metrics import QueueMetrics
from orchestrator.store import JobRecord, JobState, JobStore, describe, open_store
from orchestrator.webhook_urls import validate_webhook_url
from orchestrator.webhooks import WebhookSender, load_or_create_secret
from whospoke.common.limiter import Limiter
from whospoke.common.metrics import Metrics

logger = logging.getLogger(__name__)


class DurableJobs:
    """The `Background` of the orchestrator: see the module docstring."""

    def __init__(
        self,
        config: JobsConfig,
        runner: JobRunner,
        limiter: Limiter,
        spool_dir: Path,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.store: JobStore = open_store(config.database, config.data_dir)
        self.metrics = QueueMetrics(metrics)
        self.queue = JobQueue(
            self.store,
            runner,
            limiter,
            config,
            spool_dir,
            JobSignals(),
            on_stats=self.metrics.update,
            on_end=self._ended,
        )
        self.webhooks: WebhookSender | None = None
        self._webhook_task: asyncio.Task[None] | None = None

    def load(self) -> None:
        """Blocking: reach the database and bring its schema up to date; load the secret."""
        logger.info("job store: %s", describe(self.config.database) or "sqlite")
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store.migrate()
        secret = load_or_create_secret(
            self.config.webhook_secret, self.config.data_dir / "webhook-secret"
        )
        self.webhooks = WebhookSender(
            self.store,
            secret,
            timeout_seconds=self.config.webhook_timeout_seconds,
            max_attempts=self.config.webhook_max_attempts,
            allow_private=self.config.webhook_allow_private,
            poll_seconds=self.config.poll_seconds,
        )

    async def validate_webhook(self, url: str) -> str:
        return await validate_webhook_url(url, self.config.webhook_allow_private)

    def _ended(self, record: JobRecord, state: JobState) -> None:
        self.metrics.ended(record, state)
        if record.webhook_url and self.webhooks is not None:
            self.webhooks.notify()

    async def start(self) -> None:
        await self.queue.start()
        await self.queue.refresh_stats()
        if self.webhooks is not None:
            self._webhook_task = asyncio.create_task(self.webhooks.run(), name="webhooks")

    async def stop(self, grace: float) -> None:
        await self.queue.stop(grace)
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self.webhooks is not None:
            await self.webhooks.aclose()
        await asyncio.to_thread(partial(self.store.close))
