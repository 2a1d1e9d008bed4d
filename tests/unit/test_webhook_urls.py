"""Webhook URL checks (no internal hosts), signing secrets, backoff and the payload shape."""

from __future__ import annotations

import base64
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from orchestrator.store.base import JobRecord, JobState, WebhookAttemptRecord
from orchestrator.webhook_urls import check_webhook_url, validate_webhook_url
from orchestrator.webhooks import (
    backoff_delay,
    load_or_create_secret,
    validate_secret,
    webhook_payload,
)
from whospoke.common.errors import InvalidArgument
from whospoke.v1 import orchestrator_pb2 as pb

REFUSED = [
    ("ftp://example.com/hook", "http or https"),
    ("file:///etc/passwd", "http or https"),
    ("gopher://93.184.216.34/", "http or https"),
    ("example.com/hook", "http or https"),
    ("http:///hook", "no host"),
    ("https://user:secret@93.184.216.34/hook", "user name or password"),
    ("https://token@93.184.216.34/hook", "user name or password"),
    ("https://93.184.216.34/" + "a" * 2048, "longer than 2048"),
    ("https://93.184.216.34/a b", "spaces or control"),
    ("https://93.184.216.34:99999/", "not a valid URL"),
    ("http://127.0.0.1:8080/hook", "(loopback)"),
    ("http://127.9.9.9/", "(loopback)"),
    ("http://localhost:9000/hook", "(loopback)"),
    ("http://LocalHost./hook", "(loopback)"),
    ("http://api.localhost/hook", "(loopback)"),
    ("http://10.1.2.3/", "(private)"),
    ("http://172.16.0.1/", "(private)"),
    ("http://192.168.1.10/", "(private)"),
    ("http://169.254.169.254/latest/meta-data/", "(link-local)"),
    ("http://100.64.0.1/", "(carrier-grade NAT)"),
    ("http://0.0.0.0/", "(unspecified)"),
    ("http://224.0.0.1/", "(multicast)"),
    ("http://240.0.0.1/", "(reserved)"),
    ("http://[::1]/", "(loopback)"),
    ("http://[::]/", "(unspecified)"),
    ("http://[fe80::1]/", "(link-local)"),
    ("http://[fc00::1]/", "(private)"),
    ("http://[ff02::1]/", "(multicast)"),
    ("http://[::ffff:127.0.0.1]/", "(loopback)"),
    ("http://[::ffff:10.0.0.1]/", "(private)"),
    ("http://[::ffff:169.254.169.254]/", "(link-local)"),
    ("http://[2002:7f00:1::]/", "(loopback)"),
    ("http://[64:ff9b::a00:1]/", "(private)"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_refused_urls_say_why(url: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_webhook_url(url, allow_private=False)
    message = str(caught.value)
    assert message.startswith("webhook_url: ")
    assert why in message
    if why.startswith("("):
        assert "--webhook-allow-private" in message


@pytest.mark.parametrize(
    "url",
    ["https://93.184.216.34/hook", "http://8.8.8.8:8080/a?b=c", "https://[2606:4700::1111]/x"],
)
def test_public_ip_literals_are_accepted(url: str) -> None:
    assert check_webhook_url(url, allow_private=False) == url


def test_empty_means_no_webhook() -> None:
    assert check_webhook_url("", allow_private=False) == ""


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://[::1]/", "http://10.0.0.7/", "http://localhost/"]
)
def test_allow_private_accepts_local_receivers(url: str) -> None:
    assert check_webhook_url(url, allow_private=True) == url


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_host_names_are_judged_by_every_address_they_resolve_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_dns(
        monkeypatch,
        {
            "hooks.example.com": ["93.184.216.34"],
            "sneaky.example.com": ["93.184.216.34", "10.0.0.5"],
        },
    )
    assert check_webhook_url("https://hooks.example.com/h", False) == "https://hooks.example.com/h"
    with pytest.raises(InvalidArgument, match=r"sneaky.example.com resolves to 10.0.0.5.*private"):
        check_webhook_url("https://sneaky.example.com/h", allow_private=False)
    assert check_webhook_url("https://sneaky.example.com/h", allow_private=True)
    with pytest.raises(
        InvalidArgument, match=r"webhook_url: host nowhere\.example does not resolve"
    ):
        check_webhook_url("https://nowhere.example/h", allow_private=True)


async def test_the_async_check_runs_the_same_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"internal.example": ["192.168.0.9"]})
    assert await validate_webhook_url("", allow_private=False) == ""
    with pytest.raises(InvalidArgument, match=r"\(private\)"):
        await validate_webhook_url("http://internal.example/", allow_private=False)


SECRET_BYTES = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()


def test_secrets_are_validated_and_normalised() -> None:
    assert validate_secret(SECRET) == SECRET
    assert validate_secret(base64.b64encode(SECRET_BYTES).decode().rstrip("=")) == SECRET
    with pytest.raises(ValueError, match="base64"):
        validate_secret("whsec_not base64!")
    with pytest.raises(ValueError, match="24 to 64 bytes, not 8"):
        validate_secret("whsec_" + base64.b64encode(b"12345678").decode())


def test_a_configured_secret_wins_and_a_missing_one_is_created_once(tmp_path: Path) -> None:
    path = tmp_path / "data" / "webhook-secret"
    assert load_or_create_secret(SECRET, path) == SECRET
    assert not path.exists()
    created = load_or_create_secret("", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(created.removeprefix("whsec_"))) >= 24
    Webhook(created)
    assert load_or_create_secret("", path) == created
    assert [p.name for p in path.parent.iterdir()] == ["webhook-secret"]


def test_a_broken_secret_file_is_reported_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "webhook-secret"
    path.write_text("whsec_c2hvcnQ=\n")
    with pytest.raises(ValueError, match=f"{path}: webhook secret"):
        load_or_create_secret("", path)
    assert path.read_text() == "whsec_c2hvcnQ=\n"


def test_backoff_doubles_up_to_its_cap() -> None:
    delays = [backoff_delay(n, 2.0, 30.0) for n in range(1, 7)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def record(state: JobState, **fields: Any) -> JobRecord:
    base: dict[str, Any] = {
        "job_id": "job-1",
        "client": "c",
        "state": state,
        "options": b"",
        "filename": "meeting.wav",
        "audio_bytes": 10,
        "webhook_url": "https://93.184.216.34/hook",
        "idempotency_key": "",
        "labels": (("team", "blue"),),
        "submitted_at": 1_700_000_000.0,
        "started_at": 1_700_000_002.5,
        "ended_at": 1_700_000_010.0,
        "attempts": 1,
    }
    return JobRecord(**(base | fields))


def test_a_succeeded_job_sends_its_result_in_the_cli_json_shape() -> None:
    result = pb.ProcessResult(
        text="hello",
        language="en",
        audio_duration_seconds=3.0,
        models=pb.ModelsUsed(transcription_model="base", segmentation_model="seg"),
    )
    job = record(
        JobState.SUCCEEDED,
        result=result.SerializeToString(),
        webhook_attempts=(WebhookAttemptRecord(1, 1_700_000_011.0, 500, "HTTP 500"),),
    )
    payload = webhook_payload(job, now=1_700_000_020.0)
    assert payload["type"] == "job.succeeded"
    assert payload["timestamp"] == "2023-11-14T22:13:40.000Z"
    data = payload["data"]
    assert data["job_id"] == "job-1" and data["state"] == "succeeded"
    assert data["labels"] == {"team": "blue"}
    assert data["submitted_at"] == "2023-11-14T22:13:20.000Z"
    assert (data["queue_time_s"], data["processing_time_s"]) == (2.5, 7.5)
    assert data["models"] == {"transcription": "base", "segmentation": "seg", "embedding": ""}
    assert data["result"]["text"] == "hello" and data["result"]["duration"] == 3.0
    assert "error" not in data
    assert data["webhook"] == {"attempt": 2}


def test_failed_and_cancelled_jobs_send_their_error() -> None:
    failed = webhook_payload(
        record(JobState.FAILED, error_code="UNAVAILABLE", error_message="diarizer down"), 0.0
    )
    assert failed["type"] == "job.failed"
    assert failed["data"]["error"] == {"code": "UNAVAILABLE", "message": "diarizer down"}
    assert "result" not in failed["data"] and failed["data"]["models"] is None
    cancelled = webhook_payload(
        record(JobState.CANCELLED, started_at=None, attempts=0), 1_700_000_020.0
    )
    assert cancelled["type"] == "job.cancelled"
    assert cancelled["data"]["started_at"] is None
    assert cancelled["data"]["queue_time_s"] == 10.0
    assert cancelled["data"]["processing_time_s"] == 0.0
    assert cancelled["data"]["error"]["code"] == "CANCELLED"
