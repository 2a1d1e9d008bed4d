"""The CLI's flags, grouped so that commands which do the same thing take the same flags.

`process` and `submit` send the same processing options, and `process`, `submit
--wait` and `job --wait` write a result the same way: each group is defined once
here, so a flag added for one command cannot be forgotten in another.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from whospoke.cli.errors import DEFAULT_PORT, USAGE, UsageError
from whospoke.common.priority import MAX_NICENESS
from whospoke.contract.renderings import FORMATS

DIARIZER_NICE = 10
"""The diarizer's niceness under `serve`: the transcriber, whose segments stream to the
client, takes the shared cores first; the diarizer, whose turns matter at the end of a
job, uses the rest. `bench/threads_bench.py` measures it against 0 (equal shares)."""

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")
"""`--state` values: the `JobState` names, lower case."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line gets the one line every other error gets (exit 2)."""

    def error(self, message: str) -> NoReturn:
        print(UsageError(message, f"See `{self.prog} --help`.").line(), file=sys.stderr)
        raise SystemExit(USAGE)


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0 to 65535)")
    return value


def connection_flags() -> Parser:
    """`--server`, the token and TLS: every command that talks to an orchestrator."""
    flags = Parser(add_help=False)
    flags.add_argument(
        "--server",
        help=f"orchestrator HOST[:PORT] (port {DEFAULT_PORT} when left out) or a gRPC target "
        f"such as dns:///host:port [env WHOSPOKE_SERVER; default 127.0.0.1:{DEFAULT_PORT}]",
    )
    flags.add_argument("--token", help="bearer token [env WHOSPOKE_TOKEN]")
    flags.add_argument(
        "--tls",
        action="store_true",
        default=False,
        help="use TLS with the system's CAs [env WHOSPOKE_TLS=1]",
    )
    flags.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="PEM CA bundle to trust (implies --tls) [env WHOSPOKE_TLS_CA]",
    )
    flags.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="PEM client certificate, for mutual TLS; with --tls-key [env WHOSPOKE_TLS_CERT]",
    )
    flags.add_argument(
        "--tls-key", metavar="FILE", help="PEM private key of --tls-cert [env WHOSPOKE_TLS_KEY]"
    )
    flags.add_argument(
        "--tls-server-name",
        metavar="NAME",
        help="name the server's certificate must carry, when --server names it otherwise "
        "[env WHOSPOKE_TLS_SERVER_NAME]",
    )
    flags.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    return flags


def processing_flags() -> Parser:
    """The `ProcessOptions` flags, shared by `process` and `submit`."""
    flags = Parser(add_help=False)
    flags.add_argument("--language", help="ISO 639-1 code; detected when not given")
    flags.add_argument(
        "--model",
        help="Whisper model, among those the server serves (whospoke health lists them; "
        "default: its first)",
    )
    flags.add_argument(
        "--multilingual",
        action="store_true",
        help="code-switching: detect the language of every utterance, not once per file",
    )
    flags.add_argument("--speakers", type=int, help="exact number of speakers")
    flags.add_argument("--min-speakers", type=int)
    flags.add_argument("--max-speakers", type=int)
    flags.add_argument("--no-diarization", action="store_true", help="transcript only")
    flags.add_argument("--no-transcription", action="store_true", help="speaker turns only")
    flags.add_argument(
        "--require-diarization",
        action="store_true",
        help="fail (exit 1) when diarization fails, instead of a transcript without speakers",
    )
    flags.add_argument("--prompt", help="context for the model: names, spelling, style")
    flags.add_argument("--hotwords", help="words the decoder should favour")
    flags.add_argument(
        "--known-speakers",
        metavar="NAMES",
        help="name the enrolled voices recognised (comma-separated names, or 'all'; see "
        "`whospoke speakers`)",
    )
    flags.add_argument(
        "--embeddings", action="store_true", help="each speaker's voice embedding in the result"
    )
    flags.add_argument(
        "--temperature",
        type=float,
        metavar="T",
        help="decoder sampling temperature, 0 to 1 (default 0: the same text on every run)",
    )
    return flags


def add_output_flags(command: argparse.ArgumentParser, default_format: str | None) -> None:
    """How a result is written: `process`, `submit --wait` and `job`.

    Added to each command rather than shared as a parent, because `job` has no
    default format (without one it prints a summary) and argparse parents share
    their defaults.
    """
    command.add_argument("--format", choices=FORMATS, default=default_format)
    command.add_argument("--output", "-o", help="write here instead of stdout")
    command.add_argument(
        "--allow-partial",
        action="store_true",
        help="exit 0, not 3, when a result comes back without a stage that failed",
    )
    command.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    command.add_argument("--quiet", "-q", action="store_true", help="no progress display")


def add_job_commands(
    commands: argparse._SubParsersAction[Parser],
    connect: Parser,
    processing: Parser,
    epilog: str,
) -> None:
    """`submit`, `job`, `jobs` and `cancel`: the orchestrator's durable jobs."""
    submit = commands.add_parser(
        "submit",
        help="queue a file as a durable job; prints its id",
        parents=[connect, processing],
        epilog=epilog,
    )
    submit.add_argument("file", help="audio or video file")
    submit.add_argument("--webhook", metavar="URL", help="http(s) URL told when the job ends")
    submit.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="submitting again with the same key returns the same job",
    )
    _label_flag(submit, "tag the job (repeatable), for `whospoke jobs --label`")
    submit.add_argument(
        "--wait", action="store_true", help="then wait for the result, as `whospoke job --wait`"
    )
    add_output_flags(submit, "json")
    job = commands.add_parser(
        "job", help="a job's state, or its result", parents=[connect], epilog=epilog
    )
    job.add_argument(
        "job_id",
        metavar="ID",
        help="the id `whospoke submit` printed (an id that begins with '-' goes after `--`)",
    )
    job.add_argument(
        "--wait", action="store_true", help="show its progress until it ends, then its result"
    )
    add_output_flags(job, None)
    jobs = commands.add_parser("jobs", help="list jobs, newest first", parents=[connect])
    jobs.add_argument("--state", type=str.lower, choices=JOB_STATES, help="only jobs in STATE")
    _label_flag(jobs, "only jobs with this label (repeatable: all must match)")
    jobs.add_argument("--limit", type=int, default=50, help="at most N jobs (default 50)")
    jobs.add_argument("--format", choices=("table", "json"), default="table")
    cancel = commands.add_parser("cancel", help="cancel a queued or running job", parents=[connect])
    cancel.add_argument("job_id", metavar="ID", help="the job's id")


def _label_flag(command: argparse.ArgumentParser, text: str) -> None:
    command.add_argument(
        "--label", metavar="KEY=VALUE", action="append", default=[], dest="labels", help=text
    )


def serve_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--host", default="127.0.0.1", help="address the services listen on")
    serve.add_argument(
        "--base-port",
        type=port,
        default=DEFAULT_PORT,
        help="orchestrator port (default %(default)s); the transcriber gets +1, the diarizer +2 "
        "(0: free ports)",
    )
    serve.add_argument(
        "--metrics-base-port",
        type=port,
        default=9460,
        help="orchestrator /metrics port (default %(default)s); transcriber +1, diarizer +2 "
        "(0: no metrics)",
    )
    serve.add_argument("--port", type=port, help="orchestrator port (overrides --base-port)")
    serve.add_argument("--transcriber-port", type=port, help="overrides --base-port + 1")
    serve.add_argument("--diarizer-port", type=port, help="overrides --base-port + 2")
    serve.add_argument("--metrics-port", type=port, help="orchestrator metrics port (override)")
    serve.add_argument(
        "--http-port",
        type=port,
        default=8000,
        help="the HTTP gateway's port: OpenAI-compatible API, jobs, dashboard "
        "(default %(default)s; 0: no gateway)",
    )
    serve.add_argument("--model", default="base", help="Whisper model (see whospoke-transcriber)")
    serve.add_argument(
        "--models",
        metavar="M1,M2",
        help="serve several Whisper models, one transcriber each (the first is the default; "
        "requests choose with --model); overrides --model",
    )
    serve.add_argument("--threads", type=int, default=0, help="CPU threads per service (0: auto)")
    serve.add_argument(
        "--diarizer-nice",
        type=int,
        choices=range(MAX_NICENESS + 1),
        metavar=f"0-{MAX_NICENESS}",
        default=DIARIZER_NICE,
        help="the diarizer's CPU niceness, so that the transcriber gets shared cores first "
        "(default %(default)s; 0: equal shares)",
    )
    serve.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the jobs database and uploads live, kept across restarts "
        "[env WHOSPOKE_DATA_DIR; default $XDG_DATA_HOME/whospoke or ~/.local/share/whospoke]",
    )
    serve.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )


def process_flags(process: argparse.ArgumentParser) -> None:
    process.add_argument("file", help="audio or video file")
    add_output_flags(process, "json")


def live_flags(live: argparse.ArgumentParser) -> None:
    live.add_argument(
        "file", help="audio or video file sent as it would be spoken, or - for raw PCM on stdin"
    )
    live.add_argument(
        "--pace",
        type=float,
        default=1.0,
        help="a file's speed: 1 (default) is real time, 2 twice as fast, 0 all at once",
    )
    live.add_argument(
        "--format",
        choices=("text", "jsonl"),
        default="text",
        help="text lines, or one JSON object per event and the result last",
    )
    live.add_argument(
        "--encoding",
        choices=("s16le", "f32le", "encoded"),
        default="s16le",
        help="stdin's samples, or 'encoded': a compressed stream (WebM or Ogg Opus, MP3...) "
        "whose header gives its rate and channels",
    )
    live.add_argument("--rate", type=int, default=16000, metavar="HZ", help="stdin's sample rate")
    live.add_argument("--channels", type=int, choices=(1, 2), default=1, help="stdin's channels")
    live.add_argument(
        "--speaker-latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="delay of the provisional speakers, 0.5 to 10 (default 2): longer is more accurate",
    )
    live.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")


def add_speaker_commands(commands: argparse._SubParsersAction[Parser], connect: Parser) -> None:
    """`speakers enroll NAME FILE`, `speakers list`, `speakers delete NAME`."""
    speakers = commands.add_parser("speakers", help="enrolled voices (known speakers)")
    actions = speakers.add_subparsers(dest="action", required=True, metavar="{enroll,list,delete}")
    enroll = actions.add_parser(
        "enroll", help="enroll a voice from a recording of that person alone", parents=[connect]
    )
    enroll.add_argument("name", help="the name results will carry for this voice")
    enroll.add_argument("file", help="a few seconds to a few minutes of this person speaking")
    enroll.add_argument("--replace", action="store_true", help="re-enroll an enrolled name")
    listing = actions.add_parser("list", help="the enrolled voices", parents=[connect])
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.add_argument(
        "--embeddings", action="store_true", help="include each voice's embedding (json)"
    )
    delete = actions.add_parser("delete", help="forget an enrolled voice", parents=[connect])
    delete.add_argument("name", help="the enrolled name")
