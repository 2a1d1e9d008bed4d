"""Settings of the transcriber service, from flags and environment variables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transcriber.windows import batch_span
from whospoke.common.audio import SAMPLE_RATE
from whospoke.common.config import (
    EnvParser,
    ServerConfig,
    add_audio_stream_flags,
    add_server_flags,
    server_config,
)
from whospoke.common.models import DEFAULT_WHISPER_MODEL
from whospoke.contract.transcription import MAX_BEAM_SIZE

MAX_BATCH_SIZE = 64
GPU_BATCH_SIZE = 8
CPU_BATCH_SIZE = 4
"""On 2 CPU cores (Whisper base), the transcriber alone decodes the dev meeting in 10.7 s
with batches of 4, 13.5 s with 2 (the whole file with faster-whisper: 17.8 s). With the model
in process (`--model-process off`) a cancel waits for the beam search in flight: up to
2.4-2.7 s with 4, 1.2 s with 2 (2.1 s for the hardest window alone, so no batch size bounds
it below 2 s with this model on 2 cores); in a child process, the call is killed."""

DEFAULT_PORT = 50061
DEFAULT_METRICS_PORT = 9461


@dataclass(frozen=True)
class ModelConfig:
    """Which Whisper model, where it runs, and how."""

    model: str = DEFAULT_WHISPER_MODEL
    device: str = "auto"
    device_index: int = 0
    compute_type: str = "auto"
    cpu_threads: int = 0
    default_beam_size: int = 5
    batch_size: int = 0
    """Windows of a file decoded in one pass; 0: `auto_batch_size` for the device."""
    model_process: str = "auto"
    """The model in child processes a cancel kills (transcriber/model_process.py): on, off,
    or auto (on for CPU)."""
    live_early_words: str = "auto"
    """Live words before the pause (transcriber/early.py): on, off, or auto (on a GPU)."""


@dataclass(frozen=True)
class TranscriberConfig:
    server: ServerConfig
    model: ModelConfig
    max_concurrent_streams: int = 1
    max_queued_streams: int = 8
    max_buffer_seconds: float = 120.0
    min_chunk_seconds: float = 0.1


def auto_batch_size(device: str) -> int:
    """The batch size when none is set: larger on a GPU, where windows run in parallel."""
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    return GPU_BATCH_SIZE if device == "cuda" else CPU_BATCH_SIZE


def parser() -> EnvParser:
    p = EnvParser(
        "whospoke-transcriber",
        "WHOSPOKE_TRANSCRIBER",
        "Speech-to-text gRPC service (whospoke.v1.Transcriber) with faster-whisper.",
    )
    add_server_flags(p, DEFAULT_PORT, DEFAULT_METRICS_PORT)
    add_audio_stream_flags(p)
    _model_flags(p)
    p.flag(
        "live-early-words",
        "auto",
        "send an open live utterance's words before its pause, while decodes are quick "
        "(0.5 s or less) (auto: on a GPU, not on CPU, where a Whisper pass takes over a second)",
        choices=["auto", "on", "off"],
    )
    p.flag("max-concurrent-streams", 1, "streams transcribed at once", type=int, minimum=1)
    p.flag("max-queued-streams", 8, "streams that may wait for a slot", type=int, minimum=0)
    p.flag(
        "max-buffer-seconds",
        120.0,
        "audio a stream may buffer ahead of transcription before reading pauses "
        "(raised to what one batch needs: (batch size + 2) x 30 s)",
        type=float,
        minimum=60,
    )
    return p


def _model_flags(p: EnvParser) -> None:
    """Which model, where it runs, and how it decodes."""
    p.flag(
        "model",
        DEFAULT_WHISPER_MODEL,
        "Whisper model: 'base' or 'tiny.en' (embedded, offline), a CTranslate2 "
        "directory, or a faster-whisper hub name such as 'large-v3'",
    )
    p.flag("device", "auto", "where the model runs", choices=["auto", "cpu", "cuda"])
    p.flag("device-index", 0, "GPU index when the device is cuda", type=int, minimum=0)
    p.flag(
        "compute-type",
        "auto",
        "CTranslate2 compute type: auto (int8 on CPU, float16 on GPU), int8, "
        "int8_float16, float16, float32...",
    )
    p.flag("cpu-threads", 0, "threads per stream on CPU (0: library default)", type=int, minimum=0)
    p.flag(
        "beam-size",
        5,
        "decoder beam size when a stream does not set one",
        type=int,
        minimum=1,
        maximum=MAX_BEAM_SIZE,
    )
    p.flag(
        "batch-size",
        0,
        "30 s windows of a file decoded in one batched pass (0: 8 on a GPU, 4 on CPU); "
        "live streams decode one window at a time",
        type=int,
        minimum=0,
        maximum=MAX_BATCH_SIZE,
    )
    p.flag(
        "model-process",
        "auto",
        "run the model in a child process per concurrent stream, which a cancel kills at "
        "once (auto: on CPU, not on a GPU)",
        choices=["auto", "on", "off"],
    )


def load_config(argv: Sequence[str] | None = None) -> TranscriberConfig:
    p = parser()
    args = p.parse_args(argv)
    batch = args.batch_size or auto_batch_size(args.device)
    return TranscriberConfig(
        server=server_config(args),
        model=ModelConfig(
            model=args.model,
            device=args.device,
            device_index=args.device_index,
            compute_type=args.compute_type,
            cpu_threads=args.cpu_threads,
            default_beam_size=args.beam_size,
            batch_size=batch,
            model_process=args.model_process,
            live_early_words=args.live_early_words,
        ),
        max_concurrent_streams=args.max_concurrent_streams,
        max_queued_streams=args.max_queued_streams,
        max_buffer_seconds=max(args.max_buffer_seconds, batch_span(batch) / SAMPLE_RATE + 30),
        min_chunk_seconds=args.min_chunk_seconds,
    )
