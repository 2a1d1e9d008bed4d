"""A `ProcessResult` in the shapes of OpenAI's audio API, one per `response_format`.

`json`, `verbose_json` and `diarized_json` follow the official field names so the SDKs
parse them into their types; whospoke's extras ride along as extra keys (a segment's
`speaker`), which those types keep. `text`, `srt` and `vtt` are the CLI's renderings,
so a subtitle file is the same whichever way it was made.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from gateway.forms import Transcription
from gateway.languages import language_name
from whospoke.contract.renderings import to_srt, to_txt, to_vtt
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import transcriber_pb2 as tpb

UNKNOWN_SPEAKER = "unknown"
"""The label of a segment whose speaker could not be told (diarization failed)."""


def usage(result: pb.ProcessResult) -> dict[str, Any]:
    """OpenAI's duration usage: whole seconds of audio, rounded up."""
    return {"type": "duration", "seconds": math.ceil(result.audio_duration_seconds)}


def diarized_segment(index: int, segment: pb.AttributedSegment) -> dict[str, Any]:
    """One `transcript.text.segment`, as in `diarized_json` and in the SSE stream."""
    return {
        "type": "transcript.text.segment",
        "id": f"seg_{index}",
        "start": round(segment.start_seconds, 3),
        "end": round(segment.end_seconds, 3),
        "text": segment.text.strip(),
        "speaker": segment.speaker or UNKNOWN_SPEAKER,
    }


def _source(result: pb.ProcessResult, segment: pb.AttributedSegment) -> tpb.TranscriptSegment:
    """The transcriber's segment an attributed one came from (for its decoding scores)."""
    middle = (segment.start_seconds + segment.end_seconds) / 2
    best = tpb.TranscriptSegment()
    for source in result.transcription_segments:
        if source.start_seconds <= middle <= source.end_seconds:
            return source
        if source.start_seconds <= segment.start_seconds:
            best = source
    return best


def _verbose_segment(
    result: pb.ProcessResult, index: int, segment: pb.AttributedSegment, temperature: float
) -> dict[str, Any]:
    source = _source(result, segment)
    entry: dict[str, Any] = {
        "id": index,
        "seek": int(segment.start_seconds * 100),
        "start": round(segment.start_seconds, 3),
        "end": round(segment.end_seconds, 3),
        "text": segment.text if segment.text.startswith(" ") else f" {segment.text}",
        "tokens": [],
        "temperature": temperature,
        "avg_logprob": round(source.avg_logprob, 4),
        "compression_ratio": round(source.compression_ratio, 4),
        "no_speech_prob": round(source.no_speech_prob, 4),
    }
    if segment.speaker:
        entry["speaker"] = segment.speaker
    if len(result.languages) > 1:  # code-switching: say which segment is in which
        entry["language"] = language_name(segment.language)
    return entry


def verbose_json(
    result: pb.ProcessResult, task: str, words: bool, temperature: float
) -> dict[str, Any]:
    """`verbose_json`: Whisper's segments (split where the speaker changes, when diarized),
    and every word when asked for."""
    body: dict[str, Any] = {
        "task": task,
        "language": language_name(result.language),
        "duration": round(result.audio_duration_seconds, 3),
        "text": result.text,
        "segments": [
            _verbose_segment(result, i, s, temperature) for i, s in enumerate(result.segments)
        ],
        "usage": usage(result),
    }
    if words:
        body["words"] = [
            {
                "word": w.text.strip(),
                "start": round(w.start_seconds, 3),
                "end": round(w.end_seconds, 3),
                **({"speaker": w.speaker} if w.speaker else {}),
            }
            for s in result.segments
            for w in s.words
        ]
    return body


def diarized_json(result: pb.ProcessResult, task: str) -> dict[str, Any]:
    return {
        "task": task,
        "duration": round(result.audio_duration_seconds, 3),
        "text": result.text,
        "segments": [diarized_segment(i, s) for i, s in enumerate(result.segments)],
        "usage": usage(result),
    }


def answer(result: pb.ProcessResult, request: Transcription) -> Response:
    """The response body for `request.response_format`."""
    task = "translate" if request.translate else "transcribe"
    fmt = request.response_format
    if fmt == "text":
        text = to_txt(result) if request.diarize else result.text + "\n"
        return PlainTextResponse(text)
    if fmt == "srt":
        return PlainTextResponse(to_srt(result), media_type="application/x-subrip")
    if fmt == "vtt":
        return PlainTextResponse(to_vtt(result), media_type="text/vtt")
    if fmt == "verbose_json":
        temperature = request.options.temperature
        return JSONResponse(verbose_json(result, task, request.words, temperature))
    if fmt == "diarized_json":
        return JSONResponse(diarized_json(result, task))
    return JSONResponse({"text": result.text, "usage": usage(result)})
