"""A transcription request's form fields, checked and turned into `ProcessOptions`.

Field names and defaults are OpenAI's, so the official SDKs send them unchanged; the
whospoke extensions (`diarize`, speaker counts, `hotwords`, `multilingual`) are extra form
fields that those SDKs pass with `extra_body`. A bad field is a 400 naming it, before any audio
reaches the orchestrator.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from gateway.errors import bad_request
from gateway.upstream import WHISPER_ALIAS
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import transcriber_pb2 as tpb

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
GRANULARITIES = ("word", "segment")


@dataclass(frozen=True)
class Fields:
    """The form fields as received (None: not sent)."""

    model: str = "whisper-1"
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    response_format: str = "json"
    timestamp_granularities: tuple[str, ...] = ()
    stream: bool = False
    diarize: bool | None = None
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    hotwords: str | None = None
    multilingual: bool = False
    known_speaker_names: tuple[str, ...] = ()
    known_speaker_references: tuple[str, ...] = ()
    """Data URLs (`data:audio/wav;base64,...`), one per name."""


@dataclass(frozen=True)
class Transcription:
    """What to ask the orchestrator for and how to answer."""

    model: str
    response_format: str
    stream: bool
    diarize: bool
    words: bool
    """`verbose_json` lists words (`timestamp_granularities[]=word`)."""
    translate: bool
    options: pb.ProcessOptions


def _check(fields: Fields) -> bool:
    """The fields' own checks; whether diarization is on."""
    if fields.response_format not in RESPONSE_FORMATS:
        raise bad_request(
            "response_format",
            f"{fields.response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}",
        )
    for granularity in fields.timestamp_granularities:
        if granularity not in GRANULARITIES:
            raise bad_request("timestamp_granularities", f"{granularity!r} is not word or segment")
    if fields.temperature is not None and not 0.0 <= fields.temperature <= 1.0:
        raise bad_request("temperature", f"{fields.temperature:g} is outside 0 to 1")
    counts = {
        name: value
        for name, value in (
            ("num_speakers", fields.num_speakers),
            ("min_speakers", fields.min_speakers),
            ("max_speakers", fields.max_speakers),
        )
        if value is not None
    }
    for name, value in counts.items():
        if value < 1:
            raise bad_request(name, f"{value} is below 1")
    low, high = fields.min_speakers, fields.max_speakers
    if low is not None and high is not None and high < low:
        raise bad_request("max_speakers", f"{high} is below min_speakers ({low})")
    diarize = fields.diarize
    if diarize is None:
        diarize = (
            fields.response_format == "diarized_json"
            or bool(counts)
            or bool(fields.known_speaker_names)
        )
    if not diarize and fields.response_format == "diarized_json":
        raise bad_request("diarize", "diarized_json needs diarization; leave diarize on")
    if not diarize and counts:
        raise bad_request(next(iter(counts)), "speaker counts need diarize=true")
    return diarize


def transcription(fields: Fields, translate: bool = False) -> Transcription:
    """The checked request: the options for `Process` and the answer's shape."""
    diarize = _check(fields)
    words = fields.response_format == "verbose_json" and "word" in fields.timestamp_granularities
    options = pb.ProcessOptions(
        language=(fields.language or "").strip().lower(),
        task=tpb.TASK_TRANSLATE if translate else tpb.TASK_TRANSCRIBE,
        word_timestamps=words or diarize,
        skip_diarization=not diarize,
        initial_prompt=fields.prompt or "",
        hotwords=fields.hotwords or "",
        multilingual=fields.multilingual,
        model="" if fields.model == WHISPER_ALIAS else fields.model,
    )
    if fields.temperature is not None:
        options.temperature = fields.temperature
    _known_speakers(fields, options)
    if fields.num_speakers is not None:
        options.num_speakers = fields.num_speakers
    if fields.min_speakers is not None:
        options.min_speakers = fields.min_speakers
    if fields.max_speakers is not None:
        options.max_speakers = fields.max_speakers
    return Transcription(
        model=fields.model,
        response_format=fields.response_format,
        stream=fields.stream,
        diarize=diarize,
        words=words,
        translate=translate,
        options=options,
    )


def _known_speakers(fields: Fields, options: pb.ProcessOptions) -> None:
    """OpenAI's `known_speaker_names[]` with `known_speaker_references[]` (one data URL of
    each person's voice per name) become per-job voices; names alone pick enrolled voices."""
    names, references = fields.known_speaker_names, fields.known_speaker_references
    if not names and not references:
        return
    if options.skip_diarization:
        raise bad_request(
            "known_speaker_names", "known speakers need diarization; leave diarize on"
        )
    if not references:
        options.known_speakers.extend(names)
        return
    if len(references) != len(names):
        raise bad_request(
            "known_speaker_references",
            f"{len(references)} references for {len(names)} known_speaker_names; give one each",
        )
    for index, (name, url) in enumerate(zip(names, references, strict=True)):
        options.known_speaker_references.add(name=name, audio=_data_url(url, index))


def _data_url(url: str, index: int) -> bytes:
    """The bytes of a base64 `data:` URL."""
    header, comma, data = url.partition(",")
    if not comma or not header.startswith("data:") or not header.endswith(";base64"):
        raise bad_request(
            "known_speaker_references", f"[{index}] is not a base64 data URL (data:...;base64,...)"
        )
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        raise bad_request("known_speaker_references", f"[{index}] is not valid base64") from None
