"""The JSON shape of a `ProcessResult`, once: `whospoke process --format json`, job
webhooks and the HTTP API all send the same document, so a client parses one shape."""

from __future__ import annotations

from typing import Any

from whospoke.v1 import audio_pb2, diarizer_pb2
from whospoke.v1 import orchestrator_pb2 as pb


def result_to_dict(result: pb.ProcessResult) -> dict[str, Any]:
    """The JSON shape: times in seconds, every word with its speaker."""
    return {
        "text": result.text,
        "language": result.language,
        "languages": [
            {"language": x.language, "seconds": x.seconds, "share": round(x.share, 4)}
            for x in result.languages
        ],
        "duration": result.audio_duration_seconds,
        "segments": [_segment(s) for s in result.segments],
        "transcription_segments": [
            {
                "start": s.start_seconds,
                "end": s.end_seconds,
                "text": s.text.strip(),
                "language": s.language or None,
            }
            for s in result.transcription_segments
        ],
        "diarization_segments": [
            {"start": t.start_seconds, "end": t.end_seconds, "speaker": t.speaker}
            for t in result.diarization_turns
        ],
        "speakers": [_speaker(s) for s in result.speakers],
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
        "devices": [device_to_dict(d) for d in result.devices],
    }


def _speaker(speaker: diarizer_pb2.SpeakerSummary) -> dict[str, Any]:
    """Speech time; a recognised voice's similarity, and the embedding when asked for."""
    entry: dict[str, Any] = {"speaker": speaker.speaker, "speech_seconds": speaker.speech_seconds}
    if speaker.known_speaker_similarity:
        entry["known_speaker_similarity"] = round(speaker.known_speaker_similarity, 4)
    if speaker.embedding:
        entry["embedding"] = [round(x, 6) for x in speaker.embedding]
    return entry


def _segment(segment: pb.AttributedSegment) -> dict[str, Any]:
    return {
        "start": segment.start_seconds,
        "end": segment.end_seconds,
        "speaker": segment.speaker or None,
        "text": segment.text,
        "language": segment.language or None,
        "words": [
            {
                "start": w.start_seconds,
                "end": w.end_seconds,
                "word": w.text.strip(),
                "probability": round(w.probability, 4),
                "speaker": w.speaker or None,
            }
            for w in segment.words
        ],
    }


def device_to_dict(device: audio_pb2.DeviceStats) -> dict[str, Any]:
    """GPU use of one backend (present only for backends that ran on a GPU)."""
    return {
        "backend": device.backend,
        "gpu_index": device.gpu_index,
        "gpu_name": device.gpu_name,
        "utilization_percent_avg": round(device.utilization_percent_avg, 1),
        "utilization_percent_max": round(device.utilization_percent_max, 1),
        "memory_used_bytes_avg": device.memory_used_bytes_avg,
        "memory_used_bytes_max": device.memory_used_bytes_max,
        "memory_total_bytes": device.memory_total_bytes,
        "samples": device.samples,
    }
