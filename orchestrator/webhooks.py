"""Signed job webhooks (Standard Webhooks), delivered in the background with retries.

When a job ends, the store marks its webhook PENDING and due. `WebhookSender`
claims due deliveries from the store (so with several replicas sharing one
database, each delivery is made by one of them at a time, and one that a
replica dropped is made by another once its hold runs out), POSTs the JSON
document of `webhook_payload`, and records every attempt in the store, where
`GetJob` shows it. A failed attempt (no answer within the timeout, connection
error, non-2xx answer, redirect) is retried after an exponential backoff until
`max_attempts`; an answer of 410 Gone stops the retries at once, as the Standard
Webhooks guidance asks. Deliveries run concurrently and each is bounded by the
timeout, so a receiver that never answers cannot hold up the others, and none
of this runs on a job's path: a job ends whatever its webhook does.

Each request is signed with the server's secret (`webhook-id`,
`webhook-timestamp`, `webhook-signature` headers); the `webhook-id` is the same
for every attempt of a job's delivery, so a receiver can discard a retry of a
delivery it already handled. Several replicas sharing a database must be
started with the same `--webhook-secret`, or receivers will reject the
deliveries of all but one of them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from standardwebhooks import Webhook

from orchestrator.store.base import (
    JobRecord,
    JobState,
    JobStore,
    WebhookAttemptRecord,
    WebhookDelivery,
)
from orchestrator.webhook_urls import GuardedResolver, RefusedAddress, parse_webhook_url
from whospoke import __version__
from whospoke.common.errors import InvalidArgument
from whospoke.contract.results import result_to_dict
from whospoke.v1 import orchestrator_pb2

logger = logging.getLogger(__name__)

USER_AGENT = f"whospoke-webhooks/{__version__}"
SECRET_PREFIX = "whsec_"
SECRET_MIN_BYTES = 24
"""The Standard Webhooks specification asks for 24 to 64 random bytes."""
SECRET_MAX_BYTES = 64
_STATE_NAMES = {
    JobState.QUEUED: "queued",
    JobState.RUNNING: "running",
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
    JobState.EXPIRED: "expired",
}


def validate_secret(secret: str) -> str:
    """`secret` as "whsec_" + base64 when it is a usable Standard Webhooks secret
    ("whsec_" + base64, or bare base64, of 24 to 64 bytes); `ValueError` saying
    why otherwise."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(
            f'webhook secret: must be "{SECRET_PREFIX}" followed by base64 '
            f"(for example {SECRET_PREFIX}$(openssl rand -base64 32)): {exc}"
        ) from exc
    if not SECRET_MIN_BYTES <= len(raw) <= SECRET_MAX_BYTES:
        raise ValueError(
            f"webhook secret: must decode to {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes, "
            f"not {len(raw)} (for example {SECRET_PREFIX}$(openssl rand -base64 32))"
        )
    canonical = SECRET_PREFIX + base64.b64encode(raw).decode()
    Webhook(canonical)  # the library accepts it too
    return canonical


def load_or_create_secret(configured: str, path: Path) -> str:
    """The signing secret: `configured` when given (`--webhook-secret` or its
    environment variable), else the one kept in `path`, created there on first
    start (random, mode 0600), so a restart keeps signing with the same key.
    Blocking file I/O: call it at start-up or from a worker thread."""
    if configured:
        return validate_secret(configured)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return _create_secret(path)
    try:
        return validate_secret(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _create_secret(path: Path) -> str:
    """Writes a new secret atomically: a private temporary file, hard-linked into
    place, so that two processes starting at once agree on the one that won."""
    secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(secret + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return validate_secret(path.read_text())
    finally:
        temporary.unlink(missing_ok=True)
    return secret


def backoff_delay(attempt: int, base_seconds: float, max_seconds: float) -> float:
    """Seconds between failed attempt `attempt` (1 for the first) and the next:
    base, 2 x base, 4 x base, ..., never more than `max_seconds`."""
    return float(min(base_seconds * 2 ** (attempt - 1), max_seconds))


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_payload(record: JobRecord, now: float) -> dict[str, Any]:
    """The JSON document POSTed for an ended job (Standard Webhooks envelope:
    type, timestamp, data). The result has the shape of `whospoke process
    --format json`; the delivery's own state is in `GetJob`, not here."""
    state = _STATE_NAMES[record.state]
    queue_end = record.started_at or record.ended_at or now
    processing = 0.0
    if record.started_at is not None:
        processing = (record.ended_at or now) - record.started_at
    data: dict[str, Any] = {
        "job_id": record.job_id,
        "state": state,
        "labels": dict(record.labels),
        "filename": record.filename,
        "submitted_at": _iso(record.submitted_at),
        "started_at": _iso(record.started_at),
        "ended_at": _iso(record.ended_at),
        "queue_time_s": round(max(queue_end - record.submitted_at, 0.0), 3),
        "processing_time_s": round(max(processing, 0.0), 3),
        "attempts": record.attempts,
        "models": None,
    }
    if record.state == JobState.SUCCEEDED and record.result is not None:
        result = result_to_dict(orchestrator_pb2.ProcessResult.FromString(record.result))
        data["models"] = result["models"]
        data["result"] = result
    else:
        code = record.error_code or ("CANCELLED" if record.state == JobState.CANCELLED else "")
        data["error"] = {"code": code, "message": record.error_message}
    data["webhook"] = {"attempt": len(record.webhook_attempts) + 1}
    return {"type": f"job.{state}", "timestamp": _iso(now), "data": data}


class WebhookSender:
    """Delivers due webhooks until cancelled; see the module docstring.

    Run `run()` as a background task, call `notify()` when a job of this replica
    ends (the loop also polls every `poll_seconds`, for jobs other replicas end and
    for retries falling due), and `aclose()` at shutdown. A delivery cut short by
    shutdown is made again once its hold in the store runs out."""

    def __init__(
        self,
        store: JobStore,
        secret: str,
        *,
        timeout_seconds: float = 10.0,
        max_attempts: int = 6,
        backoff_seconds: float = 2.0,
        backoff_max_seconds: float = 300.0,
        allow_private: bool = False,
        concurrency: int = 4,
        poll_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._webhook = Webhook(validate_secret(secret))
        self._timeout = timeout_seconds
        self._max_attempts = max(max_attempts, 1)
        self._backoff = backoff_seconds
        self._backoff_max = backoff_max_seconds
        self._allow_private = allow_private
        self._concurrency = max(concurrency, 1)
        self._poll = poll_seconds
        self._clock = clock
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def notify(self) -> None:
        """A job ended: look for due deliveries now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Claims and delivers due webhooks until cancelled."""
        self._open_session()
        try:
            while True:
                self._wake.clear()
                free = self._concurrency - len(self._inflight)
                if free > 0 and await self._claim(free) >= free:
                    continue  # as many were due as could start: more may be
                with contextlib.suppress(TimeoutError):
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow
                    # a cancellation that arrives as the wait ends, and shutdown hangs.
                    async with asyncio.timeout(self._poll):
                        await self._wake.wait()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Cancels deliveries in flight and closes the HTTP session."""
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self._allow_private),
                use_dns_cache=False,
                force_close=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                trust_env=False,
            )
        return self._session

    async def _claim(self, limit: int) -> int:
        """Starts a delivery for each due webhook, at most `limit`; how many."""
        hold = self._timeout + 5.0
        try:
            records = await asyncio.to_thread(self._store.claim_webhooks, hold, limit)
        except Exception:
            logger.exception("could not claim due webhooks; trying again later")
            return 0
        for record in records:
            task = asyncio.create_task(self._deliver(record.job_id))
            self._inflight.add(task)
            task.add_done_callback(self._finished)
        return len(records)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()  # a slot is free
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("webhook delivery crashed", exc_info=exc)

    async def _deliver(self, job_id: str) -> None:
        """One attempt of one job's delivery, recorded in the store."""
        record = await asyncio.to_thread(self._store.get, job_id)
        if record is None or not record.state.ended or record.state == JobState.EXPIRED:
            return  # deleted or expired meanwhile: nothing left to tell
        number = len(record.webhook_attempts) + 1
        sent_at = self._clock()
        started = time.monotonic()
        status, error = await self._post(record, sent_at)
        duration = time.monotonic() - started
        if not error:
            delivery, next_at = WebhookDelivery.DELIVERED, None
        elif status == 410 or number >= self._max_attempts:
            delivery, next_at = WebhookDelivery.FAILED, None
        else:
            delay = backoff_delay(number, self._backoff, self._backoff_max)
            delivery, next_at = WebhookDelivery.PENDING, self._clock() + delay
            asyncio.get_running_loop().call_later(delay, self.notify)
        attempt = WebhookAttemptRecord(number, sent_at, status, error, duration)
        await asyncio.to_thread(
            self._store.record_webhook_attempt, job_id, attempt, delivery, next_at
        )
        log = logger.info if not error else logger.warning
        log("webhook of job %s, attempt %d: %s", job_id, number, error or "delivered")

    async def _post(self, record: JobRecord, now: float) -> tuple[int, str]:
        """POSTs the signed payload; (HTTP status or 0, why it failed or "")."""
        try:
            target = parse_webhook_url(record.webhook_url, self._allow_private)
        except InvalidArgument as exc:
            return 0, f"not called: {exc}"
        body = json.dumps(webhook_payload(record, now), separators=(",", ":"))
        msg_id = f"msg_{record.job_id}"
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now)),
            "webhook-signature": self._webhook.sign(msg_id, datetime.fromtimestamp(now, UTC), body),
        }
        session = self._open_session()
        try:
            async with (
                asyncio.timeout(self._timeout),
                session.post(
                    record.webhook_url,
                    data=body.encode(),
                    headers=headers,
                    allow_redirects=False,
                ) as response,
            ):
                status = response.status
        except TimeoutError:
            return 0, f"no answer within {self._timeout:g} s"
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, RefusedAddress):
                return 0, str(exc.os_error)
            return 0, f"{target.host} does not resolve: {exc.os_error}"
        except aiohttp.ClientError as exc:
            return 0, f"{type(exc).__name__}: {exc}"
        return status, _status_error(status)


def _status_error(status: int) -> str:
    """Why an HTTP answer counts as a failure; "" for 2xx."""
    if 200 <= status < 300:
        return ""
    if status == 410:
        return "HTTP 410 Gone: the receiver wants no more deliveries"
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed"
    return f"HTTP {status}"
