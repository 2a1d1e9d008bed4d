"""`whospoke`: serve | process FILE | health."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import grpc

from whospoke.cli.formats import FORMATS

DEFAULT_SERVER = os.environ.get("WHOSPOKE_SERVER", "127.0.0.1:50060")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="whospoke", description="Who said what, when.")
    commands = p.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the three services locally")
    serve.add_argument("--host", default="127.0.0.1", help="address the services listen on")
    serve.add_argument("--port", type=int, default=50060, help="orchestrator port")
    serve.add_argument("--transcriber-port", type=int, default=50061)
    serve.add_argument("--diarizer-port", type=int, default=50062)
    serve.add_argument("--metrics-port", type=int, default=9460, help="orchestrator metrics")
    serve.add_argument("--model", default="base", help="Whisper model (see whospoke-transcriber)")
    serve.add_argument("--threads", type=int, default=0, help="CPU threads per service (0: auto)")
    process = commands.add_parser("process", help="transcribe and diarize a file")
    process.add_argument("file", help="audio or video file")
    process.add_argument("--server", default=DEFAULT_SERVER, help="orchestrator address")
    process.add_argument("--format", choices=FORMATS, default="json")
    process.add_argument("--output", "-o", help="write here instead of stdout")
    process.add_argument("--language", help="ISO 639-1 code; detected when not given")
    process.add_argument("--speakers", type=int, help="exact number of speakers")
    process.add_argument("--min-speakers", type=int)
    process.add_argument("--max-speakers", type=int)
    process.add_argument("--no-diarization", action="store_true", help="transcript only")
    process.add_argument("--no-transcription", action="store_true", help="speaker turns only")
    process.add_argument("--prompt", help="context for the model: names, spelling, style")
    process.add_argument("--hotwords", help="words the decoder should favour")
    process.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    process.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    process.add_argument("--token", help="bearer token (default: $WHOSPOKE_TOKEN)")
    health = commands.add_parser("health", help="health of the orchestrator and its backends")
    health.add_argument("--server", default=DEFAULT_SERVER, help="orchestrator address")
    health.add_argument("--timeout", type=float, default=5.0)
    health.add_argument("--token", help="bearer token (default: $WHOSPOKE_TOKEN)")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    from whospoke.cli import client, serve

    commands = {"serve": serve.serve, "process": client.process, "health": client.health}
    try:
        code = asyncio.run(commands[args.command](args))
    except grpc.aio.AioRpcError as error:
        print(f"whospoke: {error.code().name}: {error.details()}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
