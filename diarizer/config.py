"""Settings of the diarizer service, from flags and environment variables."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from diarizer.engine import EMBEDDING_MODES, DiarizerModelConfig
from diarizer.incremental import LINKAGES, RUN_MARGIN, ClusteringSettings
from diarizer.onnx_segmentation import RUNTIMES
from whospoke.common.config import (
    EnvParser,
    ServerConfig,
    add_audio_stream_flags,
    add_server_flags,
    server_config,
)

DEFAULT_PORT = 50062
DEFAULT_METRICS_PORT = 9462
TOKEN_ENV = "WHOSPOKE_DIARIZER_HUB_TOKEN"


@dataclass(frozen=True)
class DiarizerConfig:
    server: ServerConfig
    model: DiarizerModelConfig
    max_concurrent_streams: int = 1
    max_queued_streams: int = 8
    max_buffer_seconds: float = 60.0
    min_chunk_seconds: float = 0.1


def _clustering_flags(p: EnvParser) -> None:
    p.flag(
        "clustering-linkage",
        "average",
        "how the distance between two clusters is measured",
        choices=list(LINKAGES),
    )
    p.flag(
        "clustering-threshold",
        0.39,
        "cosine distance at which clusters stop merging (centroid linkage: 0.7)",
        type=float,
        minimum=0.0,
        maximum=2.0,
    )
    p.flag("min-cluster-size", 8, "clusters with fewer embeddings are merged", type=int, minimum=1)
    p.flag(
        "run-reassign-margin",
        RUN_MARGIN,
        "how much closer (cosine similarity) a pause-separated run of a window's speaker must "
        "be to another speaker to move there; 2 turns this off",
        type=float,
        minimum=0.0,
        maximum=2.0,
    )


def _runtime_flags(p: EnvParser) -> None:
    """What runs the embedded models on the CPU (ONNX Runtime where they are exported)."""
    p.flag(
        "segmentation-runtime",
        "auto",
        "what runs the embedded segmentation-3.0: onnx (ONNX Runtime, CPU only, about 3x "
        "faster), torch, or auto (onnx on the CPU once fetched by make venv, else torch)",
        choices=list(RUNTIMES),
    )
    p.flag(
        "embedding-runtime",
        "auto",
        "what runs the embedded CAM++: onnx (ONNX Runtime, CPU only, about 45 %% less CPU), "
        "torch, or auto (onnx on the CPU once exported by make venv, else torch)",
        choices=list(RUNTIMES),
    )


def parser() -> EnvParser:
    p = EnvParser(
        "whospoke-diarizer",
        "WHOSPOKE_DIARIZER",
        "Speaker diarization gRPC service (whospoke.v1.Diarizer) with pyannote.audio.",
    )
    add_server_flags(p, DEFAULT_PORT, DEFAULT_METRICS_PORT)
    add_audio_stream_flags(p)
    p.flag(
        "segmentation",
        "",
        "segmentation model: empty for the embedded segmentation-3.0, or a checkpoint path",
    )
    p.flag(
        "embedding",
        "",
        "embedding model: empty for the embedded CAM++, or a pyannote checkpoint path or hub name",
    )
    _runtime_flags(p)
    p.flag(
        "embedding-mode",
        "auto",
        "pooled: run CAM++ once per stream and pool per window and speaker; per-window: one "
        "pass per window and speaker (any model); auto: pooled for the embedded CAM++",
        choices=list(EMBEDDING_MODES),
    )
    p.flag(
        "hub-token-file",
        "",
        f"file holding a Hugging Face token for gated hub models (or set {TOKEN_ENV})",
    )
    p.flag("device", "auto", "where the models run", choices=["auto", "cpu", "cuda"])
    p.flag(
        "window-step",
        1.0,
        "seconds between 10 s analysis windows",
        type=float,
        minimum=0.05,
        maximum=10,
    )
    p.flag("batch-size", 8, "windows segmented per forward pass", type=int, minimum=1)
    p.flag("threads", 0, "torch CPU threads (0: torch's default)", type=int, minimum=0)
    _clustering_flags(p)
    p.flag("max-concurrent-streams", 1, "streams diarized at once", type=int, minimum=1)
    p.flag("max-queued-streams", 8, "streams that may wait for a slot", type=int, minimum=0)
    p.flag(
        "max-buffer-seconds",
        60.0,
        "audio a stream may buffer ahead of analysis (at least two embedding blocks and a window)",
        type=float,
        minimum=30,
    )
    return p


def hub_token(p: EnvParser, path: str) -> str:
    """From --hub-token-file, else the environment: never a flag value, which `ps` shows."""
    if not path:
        return os.environ.get(TOKEN_ENV, "")
    try:
        return Path(path).read_text().strip()
    except OSError as error:
        p.error(f"--hub-token-file: cannot read {path}: {error.strerror}")


def load_config(argv: Sequence[str] | None = None) -> DiarizerConfig:
    p = parser()
    args = p.parse_args(argv)
    if args.embedding_mode == "pooled" and args.embedding:
        p.error("--embedding-mode pooled needs the embedded CAM++ (leave --embedding empty)")
    return DiarizerConfig(
        server=server_config(args),
        model=DiarizerModelConfig(
            segmentation=args.segmentation,
            embedding=args.embedding,
            embedding_mode=args.embedding_mode,
            hub_token=hub_token(p, args.hub_token_file),
            device=args.device,
            step_seconds=args.window_step,
            batch_size=args.batch_size,
            threads=args.threads,
            segmentation_runtime=args.segmentation_runtime,
            embedding_runtime=args.embedding_runtime,
            clustering=ClusteringSettings(
                threshold=args.clustering_threshold,
                method=args.clustering_linkage,
                min_cluster_size=args.min_cluster_size,
                run_margin=args.run_reassign_margin,
            ),
        ),
        max_concurrent_streams=args.max_concurrent_streams,
        max_queued_streams=args.max_queued_streams,
        max_buffer_seconds=args.max_buffer_seconds,
        min_chunk_seconds=args.min_chunk_seconds,
    )
