"""The CLI's checks, address defaults, error wording and progress rows, without a server."""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc
import pytest

from tests.fakes import wav_bytes
from whospoke.cli import main as cli
from whospoke.cli.checks import check_options, speaker_warning
from whospoke.cli.connect import connection, server_address
from whospoke.cli.errors import UsageError, from_rpc
from whospoke.cli.progress import ProgressView
from whospoke.contract.renderings import render
from whospoke.v1 import orchestrator_pb2 as pb


@pytest.fixture(autouse=True)
def no_client_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SERVER", "TOKEN", "TLS", "TLS_CA", "TLS_CERT", "TLS_KEY", "TLS_SERVER_NAME"):
        monkeypatch.delenv(f"WHOSPOKE_{name}", raising=False)


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("localhost", "localhost:50060"),
        ("orchestrator.internal", "orchestrator.internal:50060"),
        ("127.0.0.1:9000", "127.0.0.1:9000"),
        ("[::1]", "[::1]:50060"),
        ("::1", "[::1]:50060"),
        ("[::1]:7000", "[::1]:7000"),
        ("dns:///whospoke:443", "dns:///whospoke:443"),
        ("unix:/run/whospoke.sock", "unix:/run/whospoke.sock"),
        ("ipv4:10.0.0.1:50060,10.0.0.2:50060", "ipv4:10.0.0.1:50060,10.0.0.2:50060"),
        (" localhost ", "localhost:50060"),
    ],
)
def test_server_address_defaults_the_port(given: str, expected: str) -> None:
    assert server_address(given) == expected


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("", "is empty"),
        ("http://localhost:50060", "not a URL"),
        ("localhost:port", "'port' in 'localhost:port' is not a port"),
        ("localhost:70000", "is not a port"),
        (":50060", "no host"),
        ("[::1", "cannot read"),
        ("fe80::zz", "cannot read"),
    ],
)
def test_bad_server_addresses_are_usage_errors(given: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        server_address(given)


def process_args(*flags: str) -> argparse.Namespace:
    return cli.parser().parse_args(["process", "in.wav", *flags])


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--format", "rttm", "--no-diarization"], "--format rttm needs the diarization"),
        (["--format", "txt", "--no-transcription"], "--format txt needs the transcription"),
        (["--format", "srt", "--no-transcription"], "--format srt needs the transcription"),
        (["--format", "vtt", "--no-transcription"], "--format vtt needs the transcription"),
        (["--no-transcription", "--no-diarization"], "leave nothing to do"),
        (["--no-diarization", "--speakers", "2"], "--speakers has no effect with --no-diar"),
        (["--no-diarization", "--require-diarization"], "--require-diarization has no effect"),
        (["--no-transcription", "--language", "fr"], "--language has no effect"),
        (["--no-transcription", "--multilingual"], "--multilingual has no effect"),
        (["--multilingual", "--language", "fr"], "--multilingual has no effect with --language"),
        (["--speakers", "0"], "--speakers must be at least 1, got 0"),
        (["--min-speakers", "-1"], "--min-speakers must be at least 1"),
        (["--min-speakers", "3", "--max-speakers", "2"], "--min-speakers 3 is more than"),
        (["--speakers", "2", "--max-speakers", "3"], "cannot be combined"),
        (["--timeout", "0"], "--timeout must be more than 0"),
    ],
)
def test_impossible_combinations_are_usage_errors(flags: list[str], says: str) -> None:
    with pytest.raises(UsageError, match=says) as caught:
        check_options(process_args(*flags))
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "flags",
    [
        ["--format", "json", "--no-transcription"],
        ["--format", "json", "--no-diarization"],
        ["--format", "rttm", "--no-transcription", "--speakers", "2"],
        ["--format", "srt", "--no-diarization", "--language", "en"],
        ["--min-speakers", "2", "--max-speakers", "2", "--require-diarization"],
    ],
)
def test_possible_combinations_pass(flags: list[str]) -> None:
    check_options(process_args(*flags))


def test_speaker_counts_beyond_what_the_duration_holds_warn(tmp_path: Path) -> None:
    thirty = tmp_path / "thirty.wav"
    thirty.write_bytes(wav_bytes(30))
    warning = speaker_warning(thirty, 50, None)
    assert warning.startswith("whospoke: warning: --speakers 50 is more than a 30.0 s recording")
    assert "at most 9" in warning and "\n" not in warning
    assert "--min-speakers 10" in speaker_warning(thirty, None, 10)
    assert speaker_warning(thirty, 9, None) == speaker_warning(thirty, None, None) == ""
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("not audio")
    assert speaker_warning(not_audio, 50, None) == ""


def test_tls_flags_and_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    plain = connection(cli.parser().parse_args(["health", "--token", "t"]))
    assert not plain.tls and plain.server == "127.0.0.1:50060"
    assert plain.metadata == (("authorization", "Bearer t"),)
    with_ca = connection(cli.parser().parse_args(["health", "--tls-ca", str(pem)]))
    assert with_ca.tls and with_ca.ca == pem.read_bytes() and not with_ca.metadata
    assert connection(cli.parser().parse_args(["health", "--tls"])).tls
    monkeypatch.setenv("WHOSPOKE_SERVER", "example.org")
    monkeypatch.setenv("WHOSPOKE_TLS_CA", str(tmp_path / "missing.pem"))
    with pytest.raises(UsageError, match=r"--tls-ca \(from WHOSPOKE_TLS_CA\): no such file"):
        connection(cli.parser().parse_args(["health"]))
    monkeypatch.setenv("WHOSPOKE_TLS_CA", str(tmp_path))
    with pytest.raises(UsageError, match="is a directory"):
        connection(cli.parser().parse_args(["health"]))
    monkeypatch.delenv("WHOSPOKE_TLS_CA")
    assert connection(cli.parser().parse_args(["health"])).server == "example.org:50060"
    (tmp_path / "key.pem").write_text("not a key")
    with pytest.raises(UsageError, match="is not a PEM file"):
        args = ["health", "--tls-cert", str(pem), "--tls-key", str(tmp_path / "key.pem")]
        connection(cli.parser().parse_args(args))
    with pytest.raises(UsageError, match="--tls-cert and --tls-key go together"):
        connection(cli.parser().parse_args(["health", "--tls-cert", str(pem)]))
    monkeypatch.setenv("WHOSPOKE_TLS", "maybe")
    with pytest.raises(UsageError, match="WHOSPOKE_TLS='maybe' is not a boolean"):
        connection(cli.parser().parse_args(["health"]))


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


REFUSED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50060: "
    "Failed to connect to remote host: Connection refused"
)
UNTRUSTED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50060: Tls "
    "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:"
    "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate: OK"
)
NOT_TLS = UNTRUSTED.replace("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER")
CLOSED = (
    "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: Socket closed"
)
CERT_REQUIRED = UNTRUSTED.replace(
    "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED",
).replace("error:1000007d", "error:100000c7")


@pytest.mark.parametrize(
    ("code", "details", "tls", "line"),
    [
        (
            grpc.StatusCode.UNAVAILABLE,
            REFUSED,
            False,
            "whospoke: error: UNAVAILABLE: cannot reach the orchestrator at h:1 (connection "
            "refused). Is `whospoke serve` running? Pass --server HOST:PORT",
        ),
        (grpc.StatusCode.UNAVAILABLE, UNTRUSTED, True, "not trusted. Pass --tls-ca FILE"),
        (grpc.StatusCode.UNAVAILABLE, NOT_TLS, True, "does not speak TLS. Leave out --tls"),
        (grpc.StatusCode.UNAVAILABLE, CLOSED, False, "If the server uses TLS, pass --tls"),
        (grpc.StatusCode.UNAVAILABLE, CLOSED, True, "require a client certificate"),
        (grpc.StatusCode.UNAVAILABLE, CERT_REQUIRED, True, "require a client certificate"),
        (
            grpc.StatusCode.UNAVAILABLE,
            "diarizer: connection refused",
            False,
            "UNAVAILABLE: diarizer: connection refused. The orchestrator's diarizer failed: "
            "see `whospoke health --server h:1`.",
        ),
        (
            grpc.StatusCode.UNIMPLEMENTED,
            "Method not found!",
            False,
            "UNIMPLEMENTED: Method not found! h:1 is not an orchestrator: is it a transcriber "
            "or diarizer port? The orchestrator listens on 50060 by default.",
        ),
        (grpc.StatusCode.UNAUTHENTICATED, "missing bearer token", False, "Pass --token or set"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", False, "past --timeout 2 s"),
        (
            grpc.StatusCode.INVALID_ARGUMENT,
            "options.language: unknown\nlanguage code 'xx'",
            False,
            "whospoke: error: INVALID_ARGUMENT: options.language: unknown language code 'xx'",
        ),
    ],
)
def test_server_errors_are_one_line_with_a_hint(
    code: grpc.StatusCode, details: str, tls: bool, line: str
) -> None:
    error = from_rpc(rpc_error(code, details), "h:1", tls=tls, timeout=2.0, token=False)
    assert line in error.line() and "\n" not in error.line()
    assert error.exit_code == 1


def test_usage_errors_from_argparse_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run([]) == 2
    assert stderr_lines(capsys) == [
        "whospoke: error: the following arguments are required: "
        "{serve,process,live,health,submit,job,jobs,cancel,speakers}. "
        "See `whospoke --help`."
    ]
    assert cli.run(["process", "x.wav", "--format", "docx"]) == 2
    [line] = stderr_lines(capsys)
    assert "invalid choice: 'docx'" in line and "whospoke process --help" in line
    assert cli.run(["serve", "--base-port", "70000"]) == 2
    assert "70000 is not a port" in stderr_lines(capsys)[0]


def test_local_input_errors_are_one_line_and_debug_adds_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(["process", str(tmp_path / "missing.mp3")]) == 2
    assert stderr_lines(capsys) == [
        f"whospoke: error: no such file: {tmp_path / 'missing.mp3'}. Check the path."
    ]
    assert cli.run(["process", str(tmp_path)]) == 2
    assert stderr_lines(capsys) == [
        f"whospoke: error: {tmp_path} is a directory. Give an audio or video file."
    ]
    for argv in (["--debug", "process", str(tmp_path)], ["process", "--debug", str(tmp_path)]):
        assert cli.run(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("Traceback") and err.endswith("Give an audio or video file.\n")


def test_interrupts_and_unexpected_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_dispatch", interrupted)
    assert cli.run(["health"]) == 130
    assert stderr_lines(capsys) == ["whospoke: interrupted"]

    def broken(_: object) -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "_dispatch", broken)
    assert cli.run(["health"]) == 1
    [line] = stderr_lines(capsys)
    assert line.startswith("whospoke: error: unexpected ZeroDivisionError: division by zero.")


def event(**fields: object) -> pb.ProcessEvent:
    return pb.ProcessEvent(**fields)  # type: ignore[arg-type]


def test_progress_rows_advance_with_work_and_stop_when_their_stage_ends() -> None:
    from rich.console import Console

    warnings: list[str] = []
    view = ProgressView(Console(quiet=True), warnings.append)
    with view:
        view.show(event(stage=pb.StageStarted(stage=pb.STAGE_DECODING)))
        view.show(event(progress=pb.Progress(decoding_percent=40)))
        assert view.percent("decoding") == pytest.approx(40) and not view.finished("decoding")
        view.show(event(stage=pb.StageStarted(stage=pb.STAGE_TRANSCRIBING)))
        view.show(event(stage=pb.StageStarted(stage=pb.STAGE_DIARIZING)))
        assert view.finished("decoding"), "a later stage ends decoding (servers without the field)"
        view.show(event(progress=pb.Progress(transcription_percent=100, diarization_percent=30)))
        assert view.percent("transcribing") == pytest.approx(99.9), "100 % only when done"
        view.show(event(progress=pb.Progress(transcription_percent=20, diarization_percent=30)))
        assert view.percent("transcribing") == pytest.approx(99.9), "never backwards"
        view.show(event(progress=pb.Progress(diarization_percent=60, diarization_done=True)))
        assert view.finished("diarizing") and not view.finished("transcribing")
        warning = pb.Warning(code="no_text", message="no\ntext", start_seconds=29, end_seconds=36)
        view.show(event(warning=warning))
        view.show(event(progress=pb.Progress(transcription_percent=100, transcription_done=True)))
        assert view.finished("transcribing")
        view.show(event(stage=pb.StageStarted(stage=pb.STAGE_MERGING)))
        view.show(event(result=pb.ProcessResult()))
        assert view.finished("merging")
    assert warnings == ["whospoke: warning: no_text: no text (29.0 to 36.0 s)"]


def test_a_failed_stage_stops_its_row_without_completing_it() -> None:
    from rich.console import Console

    warnings: list[str] = []
    with ProgressView(Console(quiet=True), warnings.append) as view:
        view.show(event(stage=pb.StageStarted(stage=pb.STAGE_DIARIZING)))
        view.show(event(progress=pb.Progress(diarization_percent=25)))
        failed = pb.Warning(code="diarization_failed", message="diarizer: connection refused")
        view.show(event(warning=failed))
        view.show(event(progress=pb.Progress(diarization_percent=100, diarization_done=True)))
        view.show(event(result=pb.ProcessResult()))
        assert view.finished("diarizing") and view.percent("diarizing") == pytest.approx(25)
    assert warnings == ["whospoke: warning: diarization_failed: diarizer: connection refused"]


def test_zero_length_segments_keep_their_text_in_subtitles() -> None:
    def seg(start: float, end: float, text: str) -> pb.AttributedSegment:
        return pb.AttributedSegment(start_seconds=start, end_seconds=end, text=text, speaker="A")

    result = pb.ProcessResult(
        segments=[seg(1.0, 2.0, "hello"), seg(2.0, 2.0, "there"), seg(2.1, 3.0, "friend")]
    )
    srt = render(result, "srt")
    assert "00:00:02,000 --> 00:00:02,100\n[A] there" in srt
    assert "00:00:02.000 --> 00:00:02.100\n<v A>there" in render(result, "vtt")
    last = pb.ProcessResult(segments=[seg(5.0, 5.0, "bye")])
    assert "00:00:05,000 --> 00:00:05,300\n[A] bye" in render(last, "srt")


def test_serve_splits_the_cores_between_the_models(monkeypatch: pytest.MonkeyPatch) -> None:
    from whospoke.cli.serve import shared_threads

    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(16)), raising=False)
    assert (shared_threads(0), shared_threads(3)) == (8, 3)
    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0}, raising=False)
    assert shared_threads(0) == 1
