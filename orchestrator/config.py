"""Settings of the orchestrator service, from flags and environment variables."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from whospoke.common.config import EnvParser, MiB, ServerConfig, add_server_flags, server_config

DEFAULT_PORT = 50060
DEFAULT_METRICS_PORT = 9460
DEFAULT_TRANSCRIBER = "127.0.0.1:50061"
DEFAULT_DIARIZER = "127.0.0.1:50062"


@dataclass(frozen=True)
class BackendsConfig:
    transcriber: str = DEFAULT_TRANSCRIBER
    diarizer: str = DEFAULT_DIARIZER
    deadline_seconds: float = 120.0
    deadline_per_audio_second: float = 2.0
    tls_ca: str = ""
    """PEM CA bundle that backend certificates must chain to; TLS to the backends when set."""
    tls_cert: str = ""
    """Client certificate for mutual TLS with the backends."""
    tls_key: str = ""
    tls_server_name: str = ""
    """Name to check the backends' certificates against, when not the address's host."""


@dataclass(frozen=True)
class UploadsConfig:
    directory: Path
    """Uploads, and the `spool/` where jobs keep their decoded audio."""
    max_bytes: int = 2048 * MiB
    ttl_seconds: float = 3600.0
    max_total_bytes: int = 16384 * MiB
    max_client_bytes: int = 4096 * MiB
    max_concurrent: int = 16
    max_client_concurrent: int = 4


@dataclass(frozen=True)
class OrchestratorConfig:
    server: ServerConfig
    backends: BackendsConfig
    uploads: UploadsConfig
    max_concurrent_jobs: int = 1
    max_queued_jobs: int = 16
    max_inline_bytes: int = 32 * MiB
    max_audio_seconds: float = 4 * 3600.0


def parser() -> EnvParser:
    p = EnvParser(
        "whospoke-orchestrator",
        "WHOSPOKE_ORCHESTRATOR",
        "Who said what, when (whospoke.v1.Orchestrator): transcription and diarization "
        "in parallel on the backend services, merged by time overlap.",
    )
    add_server_flags(p, DEFAULT_PORT, DEFAULT_METRICS_PORT, max_message_bytes=64 * MiB)
    _backend_flags(p)
    p.flag("max-concurrent-jobs", 1, "jobs processed at once", type=int, minimum=1)
    p.flag("max-queued-jobs", 16, "jobs that may wait for a slot", type=int, minimum=0)
    _upload_flags(p)
    return p


def _backend_flags(p: EnvParser) -> None:
    """Where the transcriber and diarizer are, how to reach them, how long they may take."""
    p.flag(
        "transcriber",
        DEFAULT_TRANSCRIBER,
        "transcriber address; several replicas as ipv4:HOST:PORT,HOST:PORT or dns:///NAME:PORT",
    )
    p.flag("diarizer", DEFAULT_DIARIZER, "diarizer address, same forms as --transcriber")
    p.flag(
        "backend-deadline-seconds",
        120.0,
        "fixed part of every backend call's deadline",
        type=float,
        minimum=0.1,
    )
    p.flag(
        "backend-deadline-per-audio-second",
        2.0,
        "deadline added per second of audio (a slower backend is considered stuck)",
        type=float,
        minimum=0,
    )
    p.flag("backend-tls-ca", "", "PEM CA bundle for the backends' certificates (enables TLS)")
    p.flag("backend-tls-cert", "", "PEM client certificate for mutual TLS with the backends")
    p.flag("backend-tls-key", "", "PEM private key of --backend-tls-cert")
    p.flag("backend-tls-server-name", "", "name the backends' certificates must carry")


def _upload_flags(p: EnvParser) -> None:
    """Limits on what clients may send: uploads, inline files, recording length."""
    p.flag(
        "upload-dir",
        str(Path(tempfile.gettempdir()) / "whospoke-uploads"),
        "where uploads are stored; jobs keep their decoded audio in its spool/ (115 MB per hour)",
    )
    p.flag("max-upload-bytes", 2048 * MiB, "largest upload accepted", type=int, minimum=1)
    p.flag(
        "max-upload-total-bytes",
        16384 * MiB,
        "bytes all uploads may hold on disk",
        type=int,
        minimum=1,
    )
    p.flag(
        "max-client-upload-bytes",
        4096 * MiB,
        "bytes one client's uploads may hold",
        type=int,
        minimum=1,
    )
    p.flag("max-concurrent-uploads", 16, "uploads streaming in at once", type=int)
    p.flag("max-client-concurrent-uploads", 4, "uploads one client may stream in at once", type=int)
    p.flag(
        "max-inline-bytes",
        32 * MiB,
        "largest file accepted inside a Process request",
        type=int,
        minimum=1,
    )
    p.flag("max-audio-seconds", 4 * 3600.0, "longest recording accepted", type=float, minimum=1)
    p.flag(
        "upload-ttl-seconds",
        3600.0,
        "uploads are deleted this long after upload",
        type=float,
        minimum=1,
    )


def load_config(argv: Sequence[str] | None = None) -> OrchestratorConfig:
    p = parser()
    args = p.parse_args(argv)
    if bool(args.backend_tls_cert) != bool(args.backend_tls_key):
        p.error("--backend-tls-cert and --backend-tls-key must be given together")
    if args.backend_tls_cert and not args.backend_tls_ca:
        p.error("--backend-tls-cert needs --backend-tls-ca")
    return OrchestratorConfig(
        server=server_config(args),
        backends=BackendsConfig(
            transcriber=args.transcriber,
            diarizer=args.diarizer,
            deadline_seconds=args.backend_deadline_seconds,
            deadline_per_audio_second=args.backend_deadline_per_audio_second,
            tls_ca=args.backend_tls_ca,
            tls_cert=args.backend_tls_cert,
            tls_key=args.backend_tls_key,
            tls_server_name=args.backend_tls_server_name,
        ),
        uploads=UploadsConfig(
            directory=Path(args.upload_dir),
            max_bytes=args.max_upload_bytes,
            ttl_seconds=args.upload_ttl_seconds,
            max_total_bytes=args.max_upload_total_bytes,
            max_client_bytes=args.max_client_upload_bytes,
            max_concurrent=args.max_concurrent_uploads,
            max_client_concurrent=args.max_client_concurrent_uploads,
        ),
        max_concurrent_jobs=args.max_concurrent_jobs,
        max_queued_jobs=args.max_queued_jobs,
        max_inline_bytes=args.max_inline_bytes,
        max_audio_seconds=args.max_audio_seconds,
    )
