"""The jobs commands' local parts: data directory, `serve`'s orchestrator flags, labels,
the job summary, and usage errors that stop a command before anything is sent."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from whospoke.cli import main as cli
from whospoke.cli import serve
from whospoke.cli.errors import UsageError
from whospoke.cli.flags import DIARIZER_NICE
from whospoke.cli.jobs import parse_labels
from whospoke.cli.jobs_view import job_to_dict, progress_text, summary_lines
from whospoke.common.paths import default_data_dir
from whospoke.common.procs import ServiceProcess
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import orchestrator_pb2 as pb

CLOSED = "127.0.0.1:1"
"""Nothing listens there: a command that got as far as connecting would exit 1, not 2."""


def test_default_data_dir_follows_xdg_data_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_data_dir() == tmp_path / "data" / "whospoke"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")  # ignored, as the specification says
    assert default_data_dir() == tmp_path / "home" / ".local" / "share" / "whospoke"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_data_dir() == tmp_path / "home" / ".local" / "share" / "whospoke"


def test_serve_data_dir_from_the_flag_the_variable_or_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("WHOSPOKE_DATA_DIR", raising=False)

    def resolved(*argv: str) -> Path:
        return serve.data_dir(cli.parser().parse_args(["serve", *argv]))

    assert resolved() == tmp_path / "xdg" / "whospoke"
    monkeypatch.setenv("WHOSPOKE_DATA_DIR", str(tmp_path / "env"))
    assert resolved() == tmp_path / "env"
    assert resolved("--data-dir", str(tmp_path / "flag")) == tmp_path / "flag"
    (tmp_path / "file").touch()
    with pytest.raises(UsageError, match="is not a directory"):
        resolved("--data-dir", str(tmp_path / "file"))


def test_serve_gives_the_orchestrator_its_data_dir_and_private_webhooks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert serve.orchestrator_flags(["t:1"], "d:2", tmp_path) == [
        "--transcriber",
        "t:1",
        "--diarizer",
        "d:2",
        "--data-dir",
        str(tmp_path),
        "--webhook-allow-private",
    ]
    assert "--data-dir" not in serve.orchestrator_flags(["t:1"], "d:2", None)
    started: dict[str, list[str]] = {}

    def start(name: str, args: list[str], *_: Any) -> SimpleNamespace:
        started[name] = list(args)
        return SimpleNamespace(address=f"{name}:1", stop=lambda: None)

    monkeypatch.setattr(ServiceProcess, "start", start)
    free = {name: 0 for name in serve.SERVICES}
    serve.start_all("127.0.0.1", serve.Ports(free, dict(free), 8080), ["base"], 0, tmp_path)
    assert started["gateway"] == ["--orchestrator", "orchestrator:1"]
    assert started["diarizer"][-2:] == ["--nice", str(DIARIZER_NICE)]
    assert "--nice" not in started["transcriber"]
    assert started["orchestrator"][4:] == [
        "--data-dir",
        str(tmp_path),
        "--diarization-start",  # the diarizer is niced: the transcriber first, at the start too
        "after-first-segment",
        "--webhook-allow-private",
    ]
    assert started["orchestrator"][:4] == [
        "--transcriber",
        "transcriber:1",
        "--diarizer",
        "diarizer:1",
    ]
    serve.start_all("127.0.0.1", serve.Ports(free, dict(free), 0), ["base"], 0, tmp_path, 0)
    assert started["diarizer"][-2:] == ["--nice", "0"]
    assert "--diarization-start" not in started["orchestrator"]  # equal shares from the start


def test_serve_starts_a_transcriber_per_model_and_gives_the_orchestrator_each_pool(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: dict[str, list[str]] = {}

    def start(name: str, args: list[str], port: int, metrics: int, *_: Any) -> SimpleNamespace:
        started[name] = [*args, f"port={port}", f"metrics={metrics}"]
        return SimpleNamespace(address=f"{name}:{port}", stop=lambda: None)

    monkeypatch.setattr(ServiceProcess, "start", start)
    args = SimpleNamespace(
        base_port=50060,
        metrics_base_port=9460,
        port=None,
        transcriber_port=None,
        diarizer_port=None,
        metrics_port=None,
        http_port=0,
        model="base",
        models="base, tiny.en",
    )
    served = serve.models(args)  # type: ignore[arg-type]
    ports = serve.plan_ports(args)  # type: ignore[arg-type]
    serve.start_all("127.0.0.1", ports, served, 1, tmp_path)
    assert served == ["base", "tiny.en"]
    assert started["transcriber"][:2] == ["--model", "base"]
    assert started["transcriber-2"][:2] == ["--model", "tiny.en"]
    assert started["transcriber-2"][-2:] == ["port=50063", "metrics=9463"]
    assert started["orchestrator"][:6] == [
        "--transcriber",
        "transcriber:50061",
        "--transcriber",
        "transcriber-2:50063",
        "--diarizer",
        "diarizer:50062",
    ]
    with pytest.raises(UsageError):
        serve.models(SimpleNamespace(model="base", models="base,base"))  # type: ignore[arg-type]


def test_labels_are_checked_as_the_server_checks_them() -> None:
    labels = parse_labels(["team=sales", "note=a=b", "empty="])
    assert [(label.key, label.value) for label in labels] == [
        ("team", "sales"),
        ("note", "a=b"),
        ("empty", ""),
    ]
    for given, says in (
        (["team"], "is not KEY=VALUE"),
        (["=x"], "is not KEY=VALUE"),
        (["a b=x"], "is not KEY=VALUE"),
        (["a=1", "a=2"], "--label a is given twice"),
        ([f"k{i}=v" for i in range(17)], "at most 16"),
        (["k=" + "v" * 256], "over 255 characters"),
    ):
        with pytest.raises(UsageError, match=says):
            parse_labels(given)


def running_job() -> jpb.Job:
    job = jpb.Job(
        job_id="job-7",
        state=jpb.JOB_STATE_RUNNING,
        stage=pb.STAGE_TRANSCRIBING,
        progress=pb.Progress(overall_percent=42.4),
        timings=jpb.JobTimings(queue_seconds=1.25, processing_seconds=3.5),
        filename="talk.wav",
        audio_bytes=2_500_000,
        attempts=1,
        replica="replica-a",
        labels=[jpb.Label(key="team", value="sales")],
        webhook_url="https://example.org/hook",
        webhook_delivery=jpb.WEBHOOK_DELIVERY_FAILED,
    )
    job.submit_time.FromSeconds(1_700_000_000)
    job.start_time.FromSeconds(1_700_000_001)
    attempt = job.webhook_attempts.add(number=1, http_status=500, error="HTTP 500")
    attempt.duration_seconds = 0.25
    attempt.time.FromSeconds(1_700_000_010)
    return job


def test_the_summary_says_what_is_known_one_fact_a_line() -> None:
    lines = summary_lines(running_job())
    assert lines == [
        "job         job-7",
        "state       transcribing 42 %",
        "file        talk.wav (2.5 MB)",
        "submitted   2023-11-14T22:13:20Z",
        "started     2023-11-14T22:13:21Z",
        "queued for  1.2 s",
        "processing  3.5 s",
        "attempts    1 (replica replica-a)",
        "labels      team=sales",
        "webhook     https://example.org/hook failed (1 attempt)",
        "            attempt 1 2023-11-14T22:13:30Z HTTP 500 in 0.25 s: HTTP 500",
    ]
    queued = jpb.Job(job_id="j", state=jpb.JOB_STATE_QUEUED, queue_position=3)
    assert progress_text(queued) == "queued (position 3)"
    failed = jpb.Job(job_id="j", state=jpb.JOB_STATE_FAILED, error=jpb.JobError(code="INTERNAL"))
    assert progress_text(failed) == "failed (INTERNAL)"


def test_the_json_of_a_job_has_fixed_keys_and_lower_case_names() -> None:
    shown = job_to_dict(running_job())
    assert shown["state"] == "running" and shown["stage"] == "transcribing"
    assert shown["submit_time"] == "2023-11-14T22:13:20Z" and shown["end_time"] is None
    assert shown["labels"] == {"team": "sales"} and shown["error"] is None
    assert shown["webhook_delivery"] == "failed"
    assert shown["webhook_attempts"][0]["http_status"] == 500


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["submit", "missing.wav"], "no such file: missing.wav"),
        (["submit", "{file}", "--label", "team"], "--label 'team' is not KEY=VALUE"),
        (["submit", "{file}", "--webhook", "ftp://x"], "--webhook takes an http(s) URL"),
        (["submit", "{file}", "--wait", "--timeout", "0"], "--timeout must be more than 0"),
        (["submit", "{file}", "--no-diarization", "--format", "rttm"], "needs the diarization"),
        (["job", "j", "--wait", "-o", "{dir}/no/such.json"], "--output: no such folder"),
        (["jobs", "--limit", "0"], "--limit must be at least 1"),
        (["jobs", "--state", "done"], "invalid choice: 'done'"),
    ],
)
def test_local_mistakes_are_usage_errors_before_connecting(
    argv: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "talk.wav").write_bytes(b"RIFF....")
    given = [a.format(file=tmp_path / "talk.wav", dir=tmp_path) for a in argv]
    assert cli.run([*given, "--server", CLOSED]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and says in lines[0]


def test_every_jobs_command_takes_the_connection_flags() -> None:
    for argv in (["submit", "f.wav"], ["job", "j"], ["jobs"], ["cancel", "j"]):
        args: argparse.Namespace = cli.parser().parse_args([*argv, "--server", "h", "--tls"])
        assert (args.server, args.tls) == ("h", True)
