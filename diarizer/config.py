"""Settings of the diarizer service, from flags and environment variables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from diarizer.engine import DiarizerModelConfig
from diarizer.incremental import ClusteringSettings
from whospoke.common.config import EnvParser, ServerConfig, add_server_flags, server_config

DEFAULT_PORT = 50062
DEFAULT_METRICS_PORT = 9462


@dataclass(frozen=True)
class DiarizerConfig:
    server: ServerConfig
    model: DiarizerModelConfig
    max_concurrent_streams: int = 1
    max_queued_streams: int = 8
    max_buffer_seconds: float = 60.0


def parser() -> EnvParser:
    p = EnvParser(
        "whospoke-diarizer",
        "WHOSPOKE_DIARIZER",
        "Speaker diarization gRPC service (whospoke.v1.Diarizer) with pyannote.audio.",
    )
    add_server_flags(p, DEFAULT_PORT, DEFAULT_METRICS_PORT)
    p.flag(
        "segmentation",
        "",
        "segmentation model: empty for the embedded segmentation-3.0, or a checkpoint path",
    )
    p.flag("device", "auto", "where the models run", choices=["auto", "cpu", "cuda"])
    p.flag("window-step", 1.0, "seconds between 10 s analysis windows", type=float)
    p.flag("batch-size", 8, "windows segmented per forward pass", type=int)
    p.flag("threads", 0, "torch CPU threads (0: torch's default)", type=int)
    p.flag(
        "clustering-threshold", 0.6, "cosine distance at which clusters stop merging", type=float
    )
    p.flag("min-cluster-size", 12, "clusters with fewer embeddings are merged", type=int)
    p.flag("max-concurrent-streams", 1, "streams diarized at once", type=int)
    p.flag("max-queued-streams", 8, "streams that may wait for a slot", type=int)
    p.flag("max-buffer-seconds", 60.0, "audio a stream may buffer ahead of analysis", type=float)
    return p


def load_config(argv: Sequence[str] | None = None) -> DiarizerConfig:
    p = parser()
    args = p.parse_args(argv)
    if args.max_buffer_seconds < 20:
        p.error("--max-buffer-seconds must be at least 20 (two analysis windows)")
    if args.window_step <= 0 or args.window_step > 10:
        p.error("--window-step must be in (0, 10]")
    return DiarizerConfig(
        server=server_config(args),
        model=DiarizerModelConfig(
            segmentation=args.segmentation,
            device=args.device,
            step_seconds=args.window_step,
            batch_size=args.batch_size,
            threads=args.threads,
            clustering=ClusteringSettings(
                threshold=args.clustering_threshold, min_cluster_size=args.min_cluster_size
            ),
        ),
        max_concurrent_streams=args.max_concurrent_streams,
        max_queued_streams=args.max_queued_streams,
        max_buffer_seconds=args.max_buffer_seconds,
    )
