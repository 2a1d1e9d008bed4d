"""Renderings of a `ProcessResult`: JSON, SRT, WebVTT, RTTM and plain text.

In the contract package because the CLI and the HTTP gateway write the same subtitles."""

from __future__ import annotations

import json
from collections.abc import Callable

from whospoke.contract.results import result_to_dict as to_dict
from whospoke.v1 import orchestrator_pb2 as pb

FORMATS = ("json", "srt", "vtt", "rttm", "txt")


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
