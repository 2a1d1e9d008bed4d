"""`whospoke`: serve | process FILE | live FILE | health | submit FILE | job ID | jobs |
cancel ID | speakers.

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

from whospoke.cli.errors import (
    INTERRUPTED,
    OK,
    SERVER_ERROR,
    USAGE,
    CliError,
    UsageError,
)
from whospoke.cli.flags import (
    Parser,
    add_job_commands,
    add_speaker_commands,
    connection_flags,
    live_flags,
    process_flags,
    processing_flags,
    serve_flags,
)

EXIT_CODES = (
    "exit codes: 0 ok; 1 server or connection error; 2 usage or local input error; "
    "3 partial result (a requested stage failed; see --allow-partial); 130 interrupted"
)
COMMANDS = "{serve,process,live,health,submit,job,jobs,cancel,speakers}"


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="whospoke", description="Who said what, when.", epilog=EXIT_CODES)
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = p.add_subparsers(dest="command", required=True, metavar=COMMANDS)
    connect, processing = connection_flags(), processing_flags()
    serve_flags(commands.add_parser("serve", help="run the three services locally"))
    process_flags(
        commands.add_parser(
            "process",
            help="transcribe and diarize a file",
            parents=[connect, processing],
            epilog=EXIT_CODES,
        )
    )
    live_flags(
        commands.add_parser(
            "live",
            help="transcribe and diarize a stream as it is spoken",
            parents=[connect, processing],
            epilog=EXIT_CODES,
        )
    )
    health = commands.add_parser(
        "health", help="health of the orchestrator and its backends", parents=[connect]
    )
    health.add_argument("--timeout", type=float, default=5.0, help="give up after SECONDS")
    add_job_commands(commands, connect, processing, EXIT_CODES)
    add_speaker_commands(commands, connect)
    return p


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
    from whospoke.cli import client, jobs, live, serve, speakers
    from whospoke.cli.connect import connection

    if args.command in jobs.COMMANDS:
        return jobs.dispatch(args)
    if args.command == "speakers":
        return speakers.dispatch(args)
    if args.command == "process":
        job = client.prepare(args)
        return asyncio.run(client.process(job))
    if args.command == "live":
        return asyncio.run(live.live(live.prepare(args)))
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
