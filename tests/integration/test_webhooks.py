"""Webhook deliveries end to end: the real SQLite job store, a real HTTP receiver that
verifies the Standard Webhooks signature, retries, timeouts and refused addresses."""

from __future__ import annotations

import asyncio
import base64
import collections
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from orchestrator.store import (
    JobRecord,
    JobState,
    JobStore,
    NewJob,
    WebhookDelivery,
    open_store,
)
from orchestrator.webhooks import WebhookSender
from whospoke.v1 import orchestrator_pb2 as pb

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


@dataclass
class Receiver:
    """An aiohttp server on 127.0.0.1 answering per path: /ok 204, /flaky 500 twice
    then 200, /fail 500, /gone 410, /hang never (until released)."""

    port: int = 0
    requests: dict[str, list[tuple[dict[str, str], dict[str, Any]]]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    arrived: dict[str, asyncio.Event] = field(
        default_factory=lambda: collections.defaultdict(asyncio.Event)
    )
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        body = await request.text()
        try:
            payload = Webhook(SECRET).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            return web.Response(status=400, text=str(exc))
        self.requests[path].append((dict(request.headers), payload))
        self.arrived[path].set()
        if path == "hang":
            await self.release.wait()
        count = len(self.requests[path])
        status = {"ok": 204, "flaky": 500 if count <= 2 else 200, "gone": 410}.get(path, 500)
        return web.Response(status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    app = web.Application()
    app.router.add_post("/{path}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    yield server
    server.release.set()
    await runner.cleanup()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    jobs = open_store("", tmp_path)
    jobs.migrate()
    yield jobs
    jobs.close()


@pytest.fixture
async def start(store: JobStore) -> AsyncIterator[Callable[..., WebhookSender]]:
    """Starts senders (fast backoff, short polls) and stops them after the test."""
    running: list[tuple[WebhookSender, asyncio.Task[None]]] = []

    def launch(**options: Any) -> WebhookSender:
        settings: dict[str, Any] = {
            "timeout_seconds": 5.0,
            "backoff_seconds": 0.05,
            "poll_seconds": 0.05,
            "allow_private": True,
        }
        sender = WebhookSender(store, SECRET, **(settings | options))
        running.append((sender, asyncio.create_task(sender.run())))
        return sender

    yield launch
    for sender, task in running:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sender.aclose()


def _finish(store: JobStore, url: str, state: JobState) -> str:
    job_id = uuid.uuid4().hex
    store.submit(NewJob(job_id, "client", b"", "talk.wav", url, "", (("k", "v"),)), [b"x"])
    claimed = store.claim("replica", 60.0)
    assert claimed is not None and claimed.job_id == job_id
    result = pb.ProcessResult(
        text="hello there", models=pb.ModelsUsed(transcription_model="tiny")
    ).SerializeToString()
    if state == JobState.SUCCEEDED:
        assert store.finish(job_id, "replica", state, 3600.0, result=result)
    else:
        assert store.finish(job_id, "replica", state, 3600.0, None, "UNAVAILABLE", "down")
    return job_id


async def finished_job(store: JobStore, url: str, state: JobState = JobState.SUCCEEDED) -> str:
    """A job that has ended with a webhook to `url`, so its delivery is due now."""
    return await asyncio.to_thread(_finish, store, url, state)


async def settled(store: JobStore, job_id: str) -> JobRecord:
    """The job once its delivery is DELIVERED or FAILED (the store has no event to
    wait on: polls, with a deadline)."""
    deadline = time.monotonic() + 10.0
    while True:
        job = await asyncio.to_thread(store.get, job_id)
        assert job is not None
        if job.webhook_delivery not in (WebhookDelivery.PENDING, WebhookDelivery.NONE):
            return job
        assert time.monotonic() < deadline, f"delivery still {job.webhook_delivery!r}"
        await asyncio.sleep(0.02)


async def test_a_delivery_is_signed_and_carries_the_result(
    store: JobStore, receiver: Receiver, start: Callable[..., WebhookSender]
) -> None:
    start()
    job_id = await finished_job(store, receiver.url("ok"))
    job = await settled(store, job_id)
    assert job.webhook_delivery == WebhookDelivery.DELIVERED
    [attempt] = job.webhook_attempts
    assert (attempt.number, attempt.http_status, attempt.error) == (1, 204, "")
    assert attempt.duration > 0
    [(headers, payload)] = receiver.requests["ok"]  # verified by the receiver
    assert headers["webhook-id"] == f"msg_{job_id}"
    assert headers["User-Agent"].startswith("whospoke-webhooks/")
    assert headers["Content-Type"] == "application/json"
    assert payload["type"] == "job.succeeded"
    data = payload["data"]
    assert (data["job_id"], data["state"], data["labels"]) == (job_id, "succeeded", {"k": "v"})
    assert data["result"]["text"] == "hello there"
    assert data["models"]["transcription"] == "tiny"
    assert data["webhook"] == {"attempt": 1}


async def test_failed_attempts_are_retried_and_each_is_recorded(
    store: JobStore, receiver: Receiver, start: Callable[..., WebhookSender]
) -> None:
    start()
    job_id = await finished_job(store, receiver.url("flaky"), JobState.FAILED)
    job = await settled(store, job_id)
    assert job.webhook_delivery == WebhookDelivery.DELIVERED
    attempts = [(a.number, a.http_status, a.error) for a in job.webhook_attempts]
    assert attempts == [(1, 500, "HTTP 500"), (2, 500, "HTTP 500"), (3, 200, "")]
    assert job.webhook_attempts[1].time - job.webhook_attempts[0].time >= 0.05
    received = receiver.requests["flaky"]
    assert {h["webhook-id"] for h, _ in received} == {f"msg_{job_id}"}
    assert [p["data"]["webhook"]["attempt"] for _, p in received] == [1, 2, 3]
    assert received[0][1]["data"]["error"] == {"code": "UNAVAILABLE", "message": "down"}


async def test_a_receiver_that_never_answers_delays_no_other_delivery(
    store: JobStore, receiver: Receiver, start: Callable[..., WebhookSender]
) -> None:
    sender = start(timeout_seconds=30.0, poll_seconds=30.0)
    stuck = await finished_job(store, receiver.url("hang"))
    sender.notify()
    await asyncio.wait_for(receiver.arrived["hang"].wait(), 5.0)
    other = await finished_job(store, receiver.url("ok"))
    sender.notify()
    await asyncio.wait_for(receiver.arrived["ok"].wait(), 5.0)
    assert (await settled(store, other)).webhook_delivery == WebhookDelivery.DELIVERED
    job = await asyncio.to_thread(store.get, stuck)
    assert job is not None
    assert job.webhook_delivery == WebhookDelivery.PENDING and not job.webhook_attempts


async def test_deliveries_give_up_after_max_attempts_or_410(
    store: JobStore, receiver: Receiver, start: Callable[..., WebhookSender]
) -> None:
    start(max_attempts=3)
    failing = await finished_job(store, receiver.url("fail"))
    gone = await finished_job(store, receiver.url("gone"))
    job = await settled(store, failing)
    assert job.webhook_delivery == WebhookDelivery.FAILED
    assert [(a.number, a.http_status) for a in job.webhook_attempts] == [
        (1, 500),
        (2, 500),
        (3, 500),
    ]
    assert len(receiver.requests["fail"]) == 3
    job = await settled(store, gone)
    assert job.webhook_delivery == WebhookDelivery.FAILED
    [attempt] = job.webhook_attempts
    assert attempt.http_status == 410 and "Gone" in attempt.error


async def test_an_unanswered_attempt_times_out(
    store: JobStore, receiver: Receiver, start: Callable[..., WebhookSender]
) -> None:
    start(timeout_seconds=0.2, max_attempts=1)
    job = await settled(store, await finished_job(store, receiver.url("hang")))
    assert job.webhook_delivery == WebhookDelivery.FAILED
    [attempt] = job.webhook_attempts
    assert (attempt.http_status, attempt.error) == (0, "no answer within 0.2 s")


@pytest.fixture
def rebound_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rebound.example` resolves to 127.0.0.1, as if its DNS changed after submission."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == "rebound.example" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.usefixtures("rebound_dns")
async def test_private_addresses_are_refused_at_delivery(
    store: JobStore, receiver: Receiver, start: Callable[..., WebhookSender]
) -> None:
    start(allow_private=False, max_attempts=2)
    literal = await finished_job(store, receiver.url("ok"))
    rebound = await finished_job(store, receiver.url("ok", host="rebound.example"))
    job = await settled(store, literal)
    assert job.webhook_delivery == WebhookDelivery.FAILED
    assert [a.http_status for a in job.webhook_attempts] == [0, 0]
    assert "127.0.0.1 is not a public address (loopback)" in job.webhook_attempts[0].error
    job = await settled(store, rebound)
    assert job.webhook_delivery == WebhookDelivery.FAILED
    assert "rebound.example now resolves to 127.0.0.1" in job.webhook_attempts[0].error
    assert not receiver.requests


@pytest.mark.usefixtures("rebound_dns")
async def test_a_host_name_is_called_at_the_checked_address_under_its_own_name(
    store: JobStore, receiver: Receiver, start: Callable[..., WebhookSender]
) -> None:
    start(allow_private=True)
    job_id = await finished_job(store, receiver.url("ok", host="rebound.example"))
    assert (await settled(store, job_id)).webhook_delivery == WebhookDelivery.DELIVERED
    [(headers, _)] = receiver.requests["ok"]
    assert headers["Host"] == f"rebound.example:{receiver.port}"
