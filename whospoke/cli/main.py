"""`whospoke`: serve | process FILE | health.

Exit codes: 0 ok; 1 server or connection error; 2 usage or local input error;
3 partial result (a requested stage failed; see --allow-partial); 130 interrupted.
Every failure is one line on stderr; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from whospoke.cli.errors import (
    DEFAULT_PORT,
    INTERRUPTED,
    OK,
    SERVER_ERROR,
    USAGE,
    CliError,
    UsageError,
)
from whospoke.cli.formats import FORMATS

EXIT_CODES = (
    "exit codes: 0 ok; 1 server or connection error; 2 usage or local input error; "
    "3 partial result (a requested stage failed; see --allow-partial); 130 interrupted"
)


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line gets the one line every other error gets (exit 2)."""

    def error(self, message: str) -> NoReturn:
        print(UsageError(message, f"See `{self.prog} --help`.").line(), file=sys.stderr)
        raise SystemExit(USAGE)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0 to 65535)")
    return value


def _connection_flags() -> Parser:
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


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="whospoke", description="Who said what, when.", epilog=EXIT_CODES)
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = p.add_subparsers(dest="command", required=True, metavar="{serve,process,health}")
    connect = _connection_flags()
    _serve_flags(commands.add_parser("serve", help="run the three services locally"))
    _process_flags(
        commands.add_parser(
            "process",
            help="transcribe and diarize a file",
            parents=[connect],
            epilog=EXIT_CODES,
        )
    )
    health = commands.add_parser(
        "health", help="health of the orchestrator and its backends", parents=[connect]
    )
    health.add_argument("--timeout", type=float, default=5.0, help="give up after SECONDS")
    return p


def _serve_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--host", default="127.0.0.1", help="address the services listen on")
    serve.add_argument(
        "--base-port",
        type=_port,
        default=DEFAULT_PORT,
        help="orchestrator port (default %(default)s); the transcriber gets +1, the diarizer +2 "
        "(0: free ports)",
    )
    serve.add_argument(
        "--metrics-base-port",
        type=_port,
        default=9460,
        help="orchestrator /metrics port (default %(default)s); transcriber +1, diarizer +2 "
        "(0: no metrics)",
    )
    serve.add_argument("--port", type=_port, help="orchestrator port (overrides --base-port)")
    serve.add_argument("--transcriber-port", type=_port, help="overrides --base-port + 1")
    serve.add_argument("--diarizer-port", type=_port, help="overrides --base-port + 2")
    serve.add_argument("--metrics-port", type=_port, help="orchestrator metrics port (override)")
    serve.add_argument("--model", default="base", help="Whisper model (see whospoke-transcriber)")
    serve.add_argument("--threads", type=int, default=0, help="CPU threads per service (0: auto)")
    serve.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )


def _process_flags(process: argparse.ArgumentParser) -> None:
    process.add_argument("file", help="audio or video file")
    process.add_argument("--format", choices=FORMATS, default="json")
    process.add_argument("--output", "-o", help="write here instead of stdout")
    process.add_argument("--language", help="ISO 639-1 code; detected when not given")
    process.add_argument("--speakers", type=int, help="exact number of speakers")
    process.add_argument("--min-speakers", type=int)
    process.add_argument("--max-speakers", type=int)
    process.add_argument("--no-diarization", action="store_true", help="transcript only")
    process.add_argument("--no-transcription", action="store_true", help="speaker turns only")
    process.add_argument(
        "--require-diarization",
        action="store_true",
        help="fail (exit 1) when diarization fails, instead of a transcript without speakers",
    )
    process.add_argument(
        "--allow-partial",
        action="store_true",
        help="exit 0, not 3, when a result comes back without a stage that failed",
    )
    process.add_argument("--prompt", help="context for the model: names, spelling, style")
    process.add_argument("--hotwords", help="words the decoder should favour")
    process.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    process.add_argument("--quiet", "-q", action="store_true", help="no progress display")


def run(argv: Sequence[str] | None = None) -> int:
    """Parse and run one command; returns the exit code (for tests, and `main`)."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as stop:  # --help (0), or a usage error already printed (2)
        return stop.code if isinstance(stop.code, int) else USAGE
    try:
        return _dispatch(args)
    except CliError as error:
        if args.debug:
            traceback.print_exc()
        print(error.line(), file=sys.stderr)
        for line in error.details:
            print(f"  {line}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("whospoke: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`whospoke process f --format txt | head`): it
        # took what it wanted, so there is nothing to report. Point stdout at /dev/null so
        # the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except Exception as error:
        if args.debug:
            traceback.print_exc()
        print(
            f"whospoke: error: unexpected {type(error).__name__}: {error}. "
            "Run again with --debug for the traceback, and please report it.",
            file=sys.stderr,
        )
        return SERVER_ERROR


def _dispatch(args: argparse.Namespace) -> int:
    from whospoke.cli import client, serve
    from whospoke.cli.connect import connection

    if args.command == "process":
        job = client.prepare(args)
        return asyncio.run(client.process(job))
    if args.command == "health":
        if not args.timeout > 0:
            raise UsageError(
                f"--timeout must be more than 0 seconds, got {args.timeout:g}",
                "The default is 5 seconds.",
            )
        return asyncio.run(client.health(connection(args), args.timeout))
    return asyncio.run(serve.serve(args))


def main(argv: Sequence[str] | None = None) -> None:
    # gRPC's C core logs handshake failures itself, on stderr; the CLI reports them in one
    # line. Set before gRPC is imported (this module does not import it).
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
