"""Durable jobs over HTTP: the real gateway in front of a real orchestrator (SQLite job
store, fake backends), an HTTP client, and a real webhook receiver checking signatures."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx2
import pytest
from aiohttp import web
from fastapi import FastAPI
from standardwebhooks import Webhook

from gateway import jobs
from orchestrator.config import BackendsConfig, JobsConfig, OrchestratorConfig, UploadsConfig
from tests.fakes import FakeDiarizer, FakeTranscriber, serving, wav_bytes
from tests.gateway import gateway_server
from whospoke.common.config import ServerConfig
from whospoke.contract.results import result_to_dict
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import jobs_pb2_grpc as jpb_grpc

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
UNKNOWN = "A" * 22
"""A well-formed job id that was never submitted."""

Event = tuple[str | None, str, Any]
"""One SSE event: (id, event, decoded data)."""


@dataclass
class Hook:
    """A webhook receiver on 127.0.0.1 that keeps the payloads whose signature verifies."""

    port: int = 0
    payloads: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def receive(self, request: web.Request) -> web.Response:
        self.payloads.append(Webhook(SECRET).verify(await request.read(), dict(request.headers)))
        self.arrived.set()
        return web.Response(status=204)


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    receiver = Hook()
    app = web.Application()
    app.router.add_post("/hook", receiver.receive)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    receiver.port = runner.addresses[0][1]
    yield receiver
    await runner.cleanup()


@dataclass
class Stack:
    http: httpx2.AsyncClient
    grpc_jobs: jpb_grpc.JobsAsyncStub
    uploads: Path


def _with_jobs(app: FastAPI) -> None:
    """Until `gateway.app` includes the jobs router itself."""
    if not any(getattr(route, "path", "") == "/v1/jobs" for route in app.routes):
        app.include_router(jobs.router)


@asynccontextmanager
async def stack(
    tmp: Path, transcriber: FakeTranscriber | None = None, **gateway: Any
) -> AsyncIterator[Stack]:
    config = OrchestratorConfig(
        server=ServerConfig(port=0),
        backends=BackendsConfig(),
        uploads=UploadsConfig(directory=tmp / "uploads", max_bytes=8 << 20, ttl_seconds=600),
        jobs=JobsConfig(
            data_dir=tmp / "data",
            lease_seconds=0.6,
            poll_seconds=0.05,
            webhook_secret=SECRET,
            webhook_allow_private=True,
        ),
    )
    async with (
        serving(config, transcriber or FakeTranscriber(), FakeDiarizer()) as port,
        gateway_server(port, **gateway) as server,
        httpx2.AsyncClient(base_url=server.url, timeout=20) as http,
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        _with_jobs(server.app)
        yield Stack(http, jpb_grpc.JobsStub(channel), tmp / "uploads")


async def submit(
    http: httpx2.AsyncClient, seconds: float = 2, **form: Any
) -> tuple[httpx2.Response, dict[str, Any]]:
    headers = form.pop("headers", None)
    files = {"file": ("talk.wav", wav_bytes(seconds), "audio/wav")}
    response = await http.post("/v1/jobs", files=files, data=form, headers=headers)
    return response, response.json()


async def events(
    http: httpx2.AsyncClient,
    job_id: str,
    until: Callable[[Event], bool] = lambda _: False,
    **request: Any,
) -> list[Event]:
    """The job's SSE events to the stream's end, or until one matches (then the client
    hangs up, as a closed browser tab does)."""
    seen: list[Event] = []
    async with http.stream("GET", f"/v1/jobs/{job_id}/events", **request) as response:
        assert response.status_code == 200, await response.aread()
        block: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                block[name] = value.removeprefix(" ")
                continue
            if "event" in block:
                seen.append((block.get("id"), block["event"], json.loads(block["data"])))
                if until(seen[-1]):
                    break
            block = {}
    return seen


async def test_a_job_runs_to_its_result_and_its_webhook(tmp_path: Path, hook: Hook) -> None:
    async with stack(tmp_path, inline_bytes=1024) as s:  # the audio goes through Upload
        response, body = await submit(
            s.http,
            3,
            callback_url=hook.url,
            labels=["team=blue", "lang=en"],
            min_speakers="2",
            headers={"Idempotency-Key": "retry-me"},
        )
        job_id = body["job_id"]
        seen = await events(s.http, job_id)
        job = (await s.http.get(f"/v1/jobs/{job_id}")).json()
        direct = await s.grpc_jobs.GetJob(jpb.GetJobRequest(job_id=job_id))
        again, same = await submit(s.http, 1, idempotency_key="retry-me")
        async with asyncio.timeout(10):
            await hook.arrived.wait()
        listed = (await s.http.get("/v1/jobs", params={"state": "succeeded"})).json()
        blue = await s.http.get("/v1/jobs", params={"label": ["team=blue", "lang=en"]})
        red = await s.http.get("/v1/jobs", params={"label": "team=red"})
        srt = await s.http.get(f"/v1/jobs/{job_id}", params={"format": "srt"})
        leftover = list(s.uploads.glob("*.bin"))
    assert response.status_code == 202 and response.headers["location"] == f"/v1/jobs/{job_id}"
    assert body == {
        "object": "job",
        "job_id": job_id,
        "state": "queued",
        "queue_position": body["queue_position"],
        "existing": False,
    }
    assert leftover == []  # the gateway's upload is deleted: the job has its own copy
    assert seen[-1][1] == "result" and seen[-1][2] == result_to_dict(direct.result)
    assert job["state"] == "succeeded" and job["result"] == result_to_dict(direct.result)
    assert job["result"]["text"] == "one two one two one two"
    assert job["labels"] == {"team": "blue", "lang": "en"} and job["filename"] == "talk.wav"
    assert job["options"]["min_speakers"] == 2 and job["options"]["diarize"] is True
    assert job["progress"]["overall_percent"] == 100 and job["attempts"] == 1
    assert job["webhook_url"] == hook.url and job["idempotency_key"] == "retry-me"
    assert again.status_code == 200 and same["job_id"] == job_id and same["existing"] is True
    assert same["state"] == "succeeded"
    [payload] = hook.payloads
    assert payload["type"] == "job.succeeded" and payload["data"]["job_id"] == job_id
    assert payload["data"]["result"] == job["result"]
    assert [j["job_id"] for j in listed["data"]] == [job_id] and listed["object"] == "list"
    assert "result" not in listed["data"][0] and listed["next_page_token"] is None
    assert [j["job_id"] for j in blue.json()["data"]] == [job_id]
    assert red.json()["data"] == []
    assert srt.status_code == 200 and srt.text.startswith("1\n00:00:00,000 --> ")


async def test_events_resume_after_last_event_id(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        _, body = await submit(s.http, 3, diarize="false")
        job_id = body["job_id"]
        replay = await events(s.http, job_id)
        middle = replay[len(replay) // 2][0]
        assert middle is not None
        resumed = await events(s.http, job_id, headers={"Last-Event-ID": middle})
        after = await events(s.http, job_id, params={"after": middle})
        header_wins = await events(
            s.http, job_id, params={"after": "1"}, headers={"Last-Event-ID": middle}
        )
    ids = [int(event_id) for event_id, _, _ in replay if event_id is not None]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) == len(replay)
    kinds = {kind for _, kind, _ in replay}
    assert {"stage", "progress", "segment", "result"} <= kinds
    assert next(data for _, kind, data in replay if kind == "segment")["text"] == " one two"
    assert {"stage": "decoding", "audio_duration_seconds": 0.0} in [d for _, _, d in replay]
    tail = replay[len(replay) // 2 + 1 :]
    assert resumed == after == header_wins == tail and tail[-1][1] == "result"


def _stage(event: Event) -> bool:
    return event[1] == "stage" and event[2]["stage"] == "transcribing"


async def test_delete_cancels_an_active_job_then_deletes_it(tmp_path: Path) -> None:
    hold = asyncio.Event()
    transcriber = FakeTranscriber(hold=hold)
    async with stack(tmp_path, transcriber) as s:
        running = (await submit(s.http))[1]["job_id"]
        await events(s.http, running, until=_stage)  # running; then the watcher hangs up
        _, queued = await submit(s.http)
        still = (await s.http.get(f"/v1/jobs/{running}")).json()
        waiting = (await s.http.get(f"/v1/jobs/{queued['job_id']}")).json()
        dequeued = (await s.http.delete(f"/v1/jobs/{queued['job_id']}")).json()
        cancelled = await s.http.delete(f"/v1/jobs/{running}")
        async with asyncio.timeout(10):
            await transcriber.cancelled.wait()
        ended = await events(s.http, running)
        no_result = await s.http.get(f"/v1/jobs/{running}", params={"format": "srt"})
        listed = (await s.http.get("/v1/jobs", params={"state": "cancelled"})).json()
        deleted = await s.http.delete(f"/v1/jobs/{running}")
        gone = await s.http.get(f"/v1/jobs/{running}")
        hold.set()
    assert still["state"] == "running" and still["stage"] in ("transcribing", "diarizing")
    assert queued["queue_position"] == 1 and waiting["state"] == "queued"
    assert waiting["queue_position"] == 1
    assert dequeued["state"] == "cancelled" and dequeued["deleted"] is False
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert ended[-1][1] == "error" and ended[-1][2]["error"]["code"] == "job_cancelled"
    assert no_result.status_code == 409 and no_result.json()["error"]["code"] == "job_not_succeeded"
    assert {j["job_id"] for j in listed["data"]} == {running, queued["job_id"]}
    assert deleted.json() == {
        "object": "job",
        "job_id": running,
        "state": "deleted",
        "deleted": True,
    }
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


async def test_a_failed_job_and_bad_requests(tmp_path: Path) -> None:
    async with stack(tmp_path, FakeTranscriber(fail=KeyError("a bug"))) as s:
        failed = (await submit(s.http, 1))[1]["job_id"]
        ended = await events(s.http, failed)
        job = (await s.http.get(f"/v1/jobs/{failed}")).json()
        unknown = [
            await s.http.get(f"/v1/jobs/{UNKNOWN}"),
            await s.http.delete(f"/v1/jobs/{UNKNOWN}"),
            await s.http.get(f"/v1/jobs/{UNKNOWN}/events"),
        ]
        bad = {
            "job_id": await s.http.get("/v1/jobs/not-an-id"),
            "state": await s.http.get("/v1/jobs", params={"state": "done"}),
            "label": await s.http.get("/v1/jobs", params={"label": "team"}),
            "page_size": await s.http.get("/v1/jobs", params={"page_size": "0"}),
            "Last-Event-ID": await s.http.get(
                f"/v1/jobs/{failed}/events", headers={"Last-Event-ID": "x"}
            ),
            "format": await s.http.get(f"/v1/jobs/{failed}", params={"format": "doc"}),
            "stream": (await submit(s.http, 1, stream="true"))[0],
            "task": (await submit(s.http, 1, task="summarize"))[0],
            "labels": (await submit(s.http, 1, labels="bad key=v"))[0],
            "idempotency_key": (
                await submit(s.http, 1, idempotency_key="a", headers={"Idempotency-Key": "b"})
            )[0],
        }
        ftp = (await submit(s.http, 1, callback_url="ftp://example.com/hook"))[0]
        empty = await s.http.post("/v1/jobs", files={"file": ("e.wav", b"")})
    assert ended[-1][1] == "error" and ended[-1][2]["error"]["type"] == "server_error"
    assert job["state"] == "failed" and job["error"]["code"] == "INTERNAL"
    assert "KeyError" in job["error"]["message"] and job["result"] is None
    assert [r.status_code for r in unknown] == [404, 404, 404]
    for param, response in bad.items():
        assert response.status_code == 400, (param, response.text)
        assert response.json()["error"]["param"] == param, response.text
    assert ftp.status_code == 400 and "webhook_url" in ftp.json()["error"]["message"]
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "file"


async def test_pages_of_jobs(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        ids = [(await submit(s.http, 1, diarize="false"))[1]["job_id"] for _ in range(3)]
        first = (await s.http.get("/v1/jobs", params={"page_size": 2})).json()
        token = first["next_page_token"]
        second = await s.http.get("/v1/jobs", params={"page_size": 2, "page_token": token})
        for job_id in ids:  # each ends before the servers stop
            await events(s.http, job_id)
    assert first["has_more"] is True and len(first["data"]) == 2 and token
    assert second.json()["has_more"] is False
    listed = [j["job_id"] for j in first["data"] + second.json()["data"]]
    assert listed == ids[::-1]
