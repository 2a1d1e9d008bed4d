"""`whospoke process|health` against a real orchestrator gRPC server with fake backends.

The CLI runs in-process (`run([...])`, in a worker thread with its own event loop,
as the console script would) so that each case costs milliseconds; what is checked
is what a person or a script sees: the exit code, stdout and the stderr lines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import sys
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from tests.fakes import FakeDiarizer, FakeTranscriber, orchestrator_server, wav_bytes
from tests.integration.test_security import Pki, pki
from tests.media import encoded
from whospoke.cli.main import run
from whospoke.common.config import ServerConfig
from whospoke.common.errors import Unavailable
from whospoke.common.procs import free_port

__all__ = ["pki"]  # the certificates fixture, shared with the security tests
TOKEN = "cli-test-token"


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.err.splitlines()


@pytest.fixture(autouse=True)
def no_client_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SERVER", "TOKEN", "TLS", "TLS_CA", "TLS_CERT", "TLS_KEY", "TLS_SERVER_NAME"):
        monkeypatch.delenv(f"WHOSPOKE_{name}", raising=False)


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "talk.wav"
    path.write_bytes(wav_bytes(3))
    return path


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Outcome:
    capsys.readouterr()
    code = await asyncio.to_thread(run, list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return Outcome(code, captured.out, captured.err)


def orchestrator(
    tmp: Path,
    transcriber: FakeTranscriber | None = None,
    diarizer: FakeDiarizer | None = None,
    server: ServerConfig | None = None,
) -> AbstractAsyncContextManager[int]:
    """A real orchestrator server on a free port (plaintext unless `server` says otherwise)."""
    return orchestrator_server(tmp, transcriber, diarizer, server, max_upload_bytes=1 << 20)


async def test_a_transcript_with_speakers_exits_0(
    tmp_path: Path, recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transcriber = FakeTranscriber()
    async with orchestrator(tmp_path, transcriber) as port:
        server = f"127.0.0.1:{port}"
        done = await cli(
            capsys, "process", str(recording), "--server", server, "-q", "--format", "txt"
        )
        written = tmp_path / "out.json"
        to_file = await cli(
            capsys, "process", str(recording), "--server", server, "-o", str(written)
        )
    assert (done.code, done.err) == (0, "")
    assert done.out == "SPEAKER_00: one\nSPEAKER_01: two\n" * 3
    assert to_file.code == 0 and to_file.out == "" and f"wrote {written}" in to_file.err
    assert '"speaker": "SPEAKER_01"' in written.read_text()
    assert len(transcriber.options) == 2


async def test_failed_diarization_is_a_partial_result(
    tmp_path: Path, recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    diarizer = FakeDiarizer(fail=Unavailable("diarizer: connection refused"))
    async with orchestrator(tmp_path, diarizer=diarizer) as port:
        base = ["process", str(recording), "--server", f"127.0.0.1:{port}", "-q", "--format", "txt"]
        partial = await cli(capsys, *base)
        allowed = await cli(capsys, *base, "--allow-partial")
        required = await cli(capsys, *base, "--require-diarization")
    assert partial.code == 3
    assert partial.out == "one two one two one two\n", "the transcript is still written"
    assert partial.lines[0].startswith("whospoke: warning: diarization_failed: diarization failed")
    assert partial.lines[1].startswith(
        "whospoke: partial result: diarization failed, so the output has no speakers (exit 3)"
    )
    assert "--allow-partial" in partial.lines[1] and len(partial.lines) == 2
    assert allowed.code == 0 and allowed.out == partial.out
    assert allowed.lines == partial.lines[:1], "the warning still shows"
    assert required.code == 1 and required.out == ""
    assert required.lines == [
        "whospoke: error: UNAVAILABLE: diarizer: connection refused. The orchestrator's "
        f"diarizer failed: see `whospoke health --server 127.0.0.1:{port}`."
    ]


async def test_local_errors_exit_2_before_anything_is_sent(
    tmp_path: Path, recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.wav"
    empty.touch()
    transcriber, diarizer = FakeTranscriber(), FakeDiarizer()
    async with orchestrator(tmp_path, transcriber, diarizer) as port:
        server = ["--server", f"127.0.0.1:{port}"]
        cases = {
            str(tmp_path / "missing.mp3"): "no such file",
            str(tmp_path): "is a directory",
            str(empty): "is empty (0 bytes). Give a recording with audio in it.",
        }
        for path, says in cases.items():
            outcome = await cli(capsys, "process", path, *server)
            assert outcome.code == 2 and len(outcome.lines) == 1 and says in outcome.err
        for flags, says in (
            (["--format", "rttm", "--no-diarization"], "--format rttm needs the diarization"),
            (["--format", "txt", "--no-transcription"], "--format txt needs the transcription"),
            (["-o", str(tmp_path / "no" / "out.json")], "--output: no such folder"),
        ):
            outcome = await cli(capsys, "process", str(recording), *server, *flags)
            assert outcome.code == 2 and len(outcome.lines) == 1 and says in outcome.err
    assert transcriber.options == [] and diarizer.options == [], "nothing reached the server"


async def test_a_port_that_is_no_orchestrator_or_nothing_at_all_gets_a_hint(
    recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), backend)
    port = backend.add_insecure_port("127.0.0.1:0")
    await backend.start()
    try:
        wrong = await cli(capsys, "process", str(recording), "--server", f"127.0.0.1:{port}")
    finally:
        await backend.stop(0)
    assert wrong.code == 1
    assert wrong.lines == [
        f"whospoke: error: UNIMPLEMENTED: Method not found! 127.0.0.1:{port} is not an "
        "orchestrator: is it a transcriber or diarizer port? The orchestrator listens on "
        "50060 by default."
    ]
    closed = free_port()
    for command in ("process", "health"):
        argv = [command, "--server", f"localhost:{closed}"]
        refused = await cli(capsys, *argv, *([str(recording)] if command == "process" else []))
        assert refused.code == 1 and len(refused.lines) == 1
        assert refused.lines[0].startswith(
            f"whospoke: error: UNAVAILABLE: cannot reach the orchestrator at localhost:{closed}"
        )
        assert "Is `whospoke serve` running? Pass --server HOST:PORT" in refused.err


async def test_health_exits_1_when_a_backend_is_not_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with orchestrator(tmp_path) as port:
        outcome = await cli(capsys, "health", "--server", f"127.0.0.1:{port}")
    assert outcome.code == 1, "the fake diarizer reports NOT_SERVING"
    assert f"orchestrator 127.0.0.1:{port}: SERVING" in outcome.out
    assert "diarizer fake:2: NOT SERVING (NOT_SERVING)" in outcome.out


async def test_tls_and_mutual_tls(
    pki: Pki, tmp_path: Path, recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = ServerConfig(port=0, tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    common = ["process", str(recording), "-q", "--format", "txt"]
    async with orchestrator(tmp_path, server=tls) as port:
        server = ["--server", f"localhost:{port}"]
        trusted = await cli(capsys, *common, *server, "--tls-ca", str(pki.ca))
        plaintext = await cli(capsys, *common, *server)
        untrusted = await cli(capsys, *common, *server, "--tls")
    assert trusted.code == 0 and trusted.out.startswith("SPEAKER_00: one")
    assert plaintext.code == 1 and "If the server uses TLS, pass --tls" in plaintext.err
    assert untrusted.code == 1 and "certificate is not trusted" in untrusted.err
    assert "Pass --tls-ca FILE" in untrusted.err
    assert len(plaintext.lines) == len(untrusted.lines) == 1
    mutual = dataclasses.replace(tls, tls_client_ca=str(pki.ca))
    async with orchestrator(tmp_path, server=mutual) as port:
        server = ["--server", f"localhost:{port}", "--tls-ca", str(pki.ca)]
        anonymous = await cli(capsys, *common, *server)
        client_cert = ["--tls-cert", str(pki.client_cert), "--tls-key", str(pki.client_key)]
        with_cert = await cli(capsys, *common, *server, *client_cert)
    assert anonymous.code == 1 and "require a client certificate" in anonymous.err
    assert with_cert.code == 0 and with_cert.out == trusted.out


async def test_token_over_plaintext(
    tmp_path: Path,
    recording: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with orchestrator(tmp_path, server=ServerConfig(port=0, auth_tokens=(TOKEN,))) as port:
        argv = ["process", str(recording), "--server", f"127.0.0.1:{port}", "-q"]
        missing = await cli(capsys, *argv)
        wrong = await cli(capsys, *argv, "--token", "wrong")
        monkeypatch.setenv("WHOSPOKE_TOKEN", TOKEN)
        accepted = await cli(capsys, *argv)
    assert missing.code == 1 and missing.lines[0].startswith("whospoke: error: UNAUTHENTICATED")
    assert missing.lines[0].endswith("Pass --token or set WHOSPOKE_TOKEN.")
    assert wrong.code == 1 and "The token was refused" in wrong.err
    assert accepted.code == 0 and '"text": "one two one two one two"' in accepted.out


async def test_a_reader_that_goes_away_is_not_an_error(tmp_path: Path, recording: Path) -> None:
    """`whospoke process f --format txt | head -0`: stdout closes before the transcript."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    async with orchestrator(tmp_path) as port:
        argv = ["process", str(recording), "--server", f"127.0.0.1:{port}", "-q"]
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "whospoke.cli.main",
            *argv,
            "--format",
            "txt",
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
        )
        os.close(write_end)
        _, stderr = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0
    assert stderr.decode() == ""


async def test_submit_then_job_wait_against_the_real_jobs_service(
    tmp_path: Path, recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with orchestrator(tmp_path / "server") as port:
        server = f"127.0.0.1:{port}"
        submitted = await cli(capsys, "submit", str(recording), "--server", server, "-q")
        job_id = submitted.out.strip()
        waited = await cli(capsys, "job", job_id, "--wait", "--format", "txt", "--server", server)
        listed = await cli(capsys, "jobs", "--format", "json", "--server", server)
        cancelled = await cli(capsys, "cancel", job_id, "--server", server)
    assert submitted.code == 0 and len(job_id) == 22
    assert waited.code == 0
    assert waited.out.splitlines() == ["SPEAKER_00: one", "SPEAKER_01: two"] * 3
    assert listed.code == 0 and [j["job_id"] for j in json.loads(listed.out)] == [job_id]
    assert cancelled.code == 0 and "succeeded" in cancelled.out


async def test_live_sends_an_encoded_stream_from_stdin_as_it_comes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ffmpeg ... -f ogg - | whospoke live - --encoding encoded`: the server decodes it."""
    data = encoded("ogg", "libopus", seconds=3.0, rate=48000)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
    async with orchestrator(tmp_path) as port:
        server = f"127.0.0.1:{port}"
        argv = ["live", "-", "--encoding", "encoded", "--server", server, "--format", "jsonl"]
        outcome = await cli(capsys, *argv)
    assert outcome.code == 0, outcome.err
    events = [json.loads(line) for line in outcome.out.splitlines()]
    segments = [e for e in events if e.get("type") == "segment"]
    assert len(segments) == 3 and all(s["latency_seconds"] >= 0 for s in segments)
    assert abs(events[-1]["duration"] - 3.0) < 0.05
    assert "3 segments; latency p50" in outcome.err
