"""`whospoke speakers enroll | list | delete`: the orchestrator's known voices from a shell.

`whospoke process --known-speakers` then names the enrolled voices it recognises.
As everywhere in the CLI, local input (names, files) is checked before the event
loop starts, and failed calls leave as one-line `CliError`s with the documented
exit codes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from pathlib import Path

import grpc
from rich.console import Console
from rich.table import Table

from whospoke.cli.checks import input_file, read_input
from whospoke.cli.client import INLINE_LIMIT, rpc_error, upload
from whospoke.cli.connect import Connection, connection
from whospoke.cli.errors import OK, UsageError
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc
from whospoke.v1 import speakers_pb2 as spb
from whospoke.v1 import speakers_pb2_grpc as spb_grpc

CALL_SECONDS = 300.0
"""Deadline of enrolment (a diarizer pass over the recording) and the other calls."""


def dispatch(args: argparse.Namespace) -> int:
    conn = connection(args)
    if args.action == "enroll":
        name = args.name.strip()
        if not name:
            raise UsageError("NAME is empty", "Give the person's name.")
        path = input_file(args.file)
        return asyncio.run(enroll(conn, name, path, path.stat().st_size, args.replace))
    if args.action == "list":
        return asyncio.run(list_speakers(conn, args.format, args.embeddings))
    return asyncio.run(delete(conn, args.name))


async def enroll(conn: Connection, name: str, path: Path, size: int, replace: bool) -> int:
    async with conn.channel() as channel:
        try:
            request = spb.EnrollSpeakerRequest(name=name, replace=replace)
            if size > INLINE_LIMIT:
                stub = pb_grpc.OrchestratorStub(channel)
                request.upload_id = await upload(stub, path, conn.metadata)
            else:
                request.audio = await asyncio.to_thread(read_input, path)
            speaker = await spb_grpc.SpeakersStub(channel).EnrollSpeaker(
                request, timeout=CALL_SECONDS, metadata=conn.metadata
            )
        except grpc.aio.AioRpcError as error:
            raise rpc_error(error, conn, CALL_SECONDS) from error
    Console(stderr=True, highlight=False).print(
        f"enrolled {speaker.name}: {speaker.speech_seconds:.1f} s of speech "
        f"({speaker.embedding_model})",
        markup=False,
    )
    return OK


async def list_speakers(conn: Connection, fmt: str, embeddings: bool) -> int:
    async with conn.channel() as channel:
        try:
            listed = await spb_grpc.SpeakersStub(channel).ListSpeakers(
                spb.ListSpeakersRequest(include_embeddings=embeddings),
                timeout=CALL_SECONDS,
                metadata=conn.metadata,
            )
        except grpc.aio.AioRpcError as error:
            raise rpc_error(error, conn, CALL_SECONDS) from error
    if fmt == "json":
        rows = [speaker_to_dict(s) for s in listed.speakers]
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return OK
    table = Table("name", "speech (s)", "model", "enrolled")
    for s in listed.speakers:
        table.add_row(s.name, f"{s.speech_seconds:.1f}", s.embedding_model, _when(s))
    Console(highlight=False).print(table)
    return OK


async def delete(conn: Connection, name: str) -> int:
    async with conn.channel() as channel:
        try:
            await spb_grpc.SpeakersStub(channel).DeleteSpeaker(
                spb.DeleteSpeakerRequest(name=name), timeout=CALL_SECONDS, metadata=conn.metadata
            )
        except grpc.aio.AioRpcError as error:
            raise rpc_error(error, conn, CALL_SECONDS) from error
    return OK


def speaker_to_dict(speaker: spb.Speaker) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": speaker.name,
        "speech_seconds": round(speaker.speech_seconds, 2),
        "embedding_model": speaker.embedding_model,
        "enrolled_at": _when(speaker),
    }
    if speaker.embedding:
        entry["embedding"] = [round(x, 6) for x in speaker.embedding]
    return entry


def _when(speaker: spb.Speaker) -> str:
    moment = datetime.datetime.fromtimestamp(speaker.enrolled_at_unix_seconds, datetime.UTC)
    return moment.isoformat(timespec="seconds")
