"""Renderings of a `ProcessResult`: JSON, SRT, WebVTT, RTTM and plain text."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from whospoke.v1 import orchestrator_pb2 as pb

FORMATS = ("json", "srt", "vtt", "rttm", "txt")


def to_dict(result: pb.ProcessResult) -> dict[str, Any]:
    """The JSON shape: times in seconds, every word with its speaker."""
    return {
        "text": result.text,
        "language": result.language,
        "duration": result.audio_duration_seconds,
        "segments": [
            {
                "start": s.start_seconds,
                "end": s.end_seconds,
                "speaker": s.speaker or None,
                "text": s.text,
                "words": [
                    {
                        "start": w.start_seconds,
                        "end": w.end_seconds,
                        "word": w.text.strip(),
                        "probability": round(w.probability, 4),
                        "speaker": w.speaker or None,
                    }
                    for w in s.words
                ],
            }
            for s in result.segments
        ],
        "transcription_segments": [
            {"start": s.start_seconds, "end": s.end_seconds, "text": s.text.strip()}
            for s in result.transcription_segments
        ],
        "diarization_segments": [
            {"start": t.start_seconds, "end": t.end_seconds, "speaker": t.speaker}
            for t in result.diarization_turns
        ],
        "speakers": [
            {"speaker": s.speaker, "speech_seconds": s.speech_seconds} for s in result.speakers
        ],
        "warnings": [
            {"code": w.code, "message": w.message, "start": w.start_seconds, "end": w.end_seconds}
            for w in result.warnings
        ],
        "timings": {
            "queued": result.timings.queued_seconds,
            "decoding": result.timings.decoding_seconds,
            "transcription": result.timings.transcription_seconds,
            "diarization": result.timings.diarization_seconds,
            "merge": result.timings.merge_seconds,
            "total": result.timings.total_seconds,
        },
        "models": {
            "transcription": result.models.transcription_model,
            "segmentation": result.models.segmentation_model,
            "embedding": result.models.embedding_model,
        },
    }


def _clock(seconds: float, separator: str) -> str:
    millis = round(max(seconds, 0.0) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


MIN_CUE_SECONDS = 0.3
"""Shortest cue written: a segment of zero duration (a one-word split whose word has no
length) gets this much rather than being dropped, so no text is lost from subtitles."""


def _cues(result: pb.ProcessResult) -> list[tuple[float, float, pb.AttributedSegment]]:
    """(start, end, segment) of every segment with text; zero-length ones get a duration.

    A lengthened cue stops where the next one starts, when that leaves it 0.1 s or more.
    """
    segments = [s for s in result.segments if s.text.strip()]
    cues = []
    for index, s in enumerate(segments):
        start, end = s.start_seconds, s.end_seconds
        if end - start < 1e-3:
            end = start + MIN_CUE_SECONDS
            later = [n.start_seconds for n in segments[index + 1 :] if n.start_seconds > start]
            if later and later[0] - start >= 0.1:
                end = min(end, later[0])
        cues.append((start, end, s))
    return cues


def to_srt(result: pb.ProcessResult) -> str:
    blocks = []
    for number, (start, end, s) in enumerate(_cues(result), start=1):
        who = f"[{s.speaker}] " if s.speaker else ""
        timing = f"{_clock(start, ',')} --> {_clock(end, ',')}"
        blocks.append(f"{number}\n{timing}\n{who}{s.text.strip()}\n")
    return "\n".join(blocks)


def to_vtt(result: pb.ProcessResult) -> str:
    blocks = ["WEBVTT\n"]
    for start, end, s in _cues(result):
        text = s.text.strip().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        who = f"<v {s.speaker}>" if s.speaker else ""
        timing = f"{_clock(start, '.')} --> {_clock(end, '.')}"
        blocks.append(f"{timing}\n{who}{text}\n")
    return "\n".join(blocks)


def to_rttm(result: pb.ProcessResult, uri: str = "audio") -> str:
    uri = "".join(c if not c.isspace() else "_" for c in uri) or "audio"
    lines = [
        f"SPEAKER {uri} 1 {t.start_seconds:.3f} {t.end_seconds - t.start_seconds:.3f} "
        f"<NA> <NA> {t.speaker} <NA> <NA>"
        for t in result.diarization_turns
        if t.end_seconds > t.start_seconds
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def to_txt(result: pb.ProcessResult) -> str:
    """One paragraph per speaker turn (consecutive segments of one speaker joined)."""
    paragraphs: list[tuple[str, list[str]]] = []
    for s in result.segments:
        if paragraphs and paragraphs[-1][0] == s.speaker:
            paragraphs[-1][1].append(s.text.strip())
        else:
            paragraphs.append((s.speaker, [s.text.strip()]))
    lines = [f"{who}: {' '.join(texts)}" if who else " ".join(texts) for who, texts in paragraphs]
    return "\n".join(lines) + ("\n" if lines else "")


def render(result: pb.ProcessResult, fmt: str, uri: str = "audio") -> str:
    renderers: dict[str, Callable[[pb.ProcessResult], str]] = {
        "json": lambda r: json.dumps(to_dict(r), indent=2, ensure_ascii=False) + "\n",
        "srt": to_srt,
        "vtt": to_vtt,
        "rttm": lambda r: to_rttm(r, uri),
        "txt": to_txt,
    }
    return renderers[fmt](result)
