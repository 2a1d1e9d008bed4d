"""Settings of the orchestrator service, from flags and environment variables."""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from whospoke.common.config import EnvParser, MiB, ServerConfig, add_server_flags, server_config
from whospoke.common.paths import default_data_dir

DEFAULT_PORT = 50060
DEFAULT_METRICS_PORT = 9460
DEFAULT_TRANSCRIBER = "127.0.0.1:50061"
DEFAULT_DIARIZER = "127.0.0.1:50062"
POOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


@dataclass(frozen=True)
class PoolTarget:
    """A transcriber pool: the model it is named by ("" to ask its `GetInfo`) and its address."""

    model: str
    target: str


def pool_target(raw: str) -> PoolTarget:
    """`MODEL=ADDRESS`, or `ADDRESS` alone (the pool is named by the model it reports)."""
    model, equals, target = raw.partition("=")
    if not equals:
        model, target = "", raw
    if equals and not POOL_NAME.fullmatch(model):
        raise ValueError(f"pool name {model!r} is not a model name (letters, digits, . _ - /)")
    if not target:
        raise ValueError("empty address")
    return PoolTarget(model, target)


pool_target.__name__ = "MODEL=ADDRESS"


@dataclass(frozen=True)
class BackendsConfig:
    transcribers: tuple[PoolTarget, ...] = (PoolTarget("", DEFAULT_TRANSCRIBER),)
    """Transcriber pools in order; the first serves requests that name no model."""
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
class JobsConfig:
    """The durable job queue (`whospoke.v1.Jobs`) and its webhooks."""

    data_dir: Path
    """Holds the SQLite jobs database (and, by default, uploads) across restarts."""
    database: str = ""
    """"" for SQLite in `data_dir`; postgresql://... for a queue shared by replicas."""
    replica: str = field(default_factory=lambda: default_replica())
    """This process's name in job records and leases; unique per replica."""
    lease_seconds: float = 30.0
    max_attempts: int = 3
    result_ttl_seconds: float = 3600.0
    poll_seconds: float = 1.0
    max_queued: int = 10000
    webhook_secret: str = ""
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = 10.0
    webhook_max_attempts: int = 6


@dataclass(frozen=True)
class OrchestratorConfig:
    server: ServerConfig
    backends: BackendsConfig
    uploads: UploadsConfig
    jobs: JobsConfig | None = None
    """None (tests, embedding): SQLite in a `jobs/` folder beside the uploads."""
    max_concurrent_jobs: int = 1
    max_queued_jobs: int = 16
    max_inline_bytes: int = 32 * MiB
    max_audio_seconds: float = 4 * 3600.0
    max_live_streams: int = 4
    """`ProcessStream` calls at once; each also holds one of the job slots."""
    max_live_lag_seconds: float = 60.0
    """A live stream whose processing falls this far behind its audio is ended."""
    diarization_start: str = "with-transcription"
    """When a file's diarizer call starts: at once, or after the first segment (`serve`,
    where both models share cores; see `JobRunner.hold_diarization`)."""


DIARIZATION_STARTS = ["with-transcription", "after-first-segment"]


def default_replica() -> str:
    """HOST:PID:random, unique even for servers sharing a process (tests)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


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
    p.flag(
        "max-live-streams",
        4,
        "live streams (ProcessStream) at once, each in a job slot",
        type=int,
        minimum=0,
    )
    p.flag(
        "max-live-lag-seconds",
        60.0,
        "end a live stream whose processing falls this far behind its audio "
        "(a warning event at half)",
        type=float,
        minimum=1.0,
    )
    p.flag(
        "diarization-start",
        "with-transcription",
        "when a file's diarizer call starts: with-transcription, or after-first-segment "
        "(at most 5 s later) where both models share CPU cores, so the first words come sooner",
        choices=DIARIZATION_STARTS,
    )
    _upload_flags(p)
    _job_flags(p)
    _webhook_flags(p)
    return p


def _backend_flags(p: EnvParser) -> None:
    """Where the transcriber and diarizer are, how to reach them, how long they may take."""
    p.flag(
        "transcriber",
        [pool_target(DEFAULT_TRANSCRIBER)],
        "a transcriber pool, [MODEL=]ADDRESS (several replicas as ipv4:HOST:PORT,HOST:PORT or"
        " dns:///NAME:PORT); repeat for one pool per model, the first is the default",
        type=pool_target,
        repeated=True,
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


def _job_flags(p: EnvParser) -> None:
    """The durable job queue: where it lives, leases, retries, retention, webhooks."""
    p.flag(
        "data-dir",
        str(default_data_dir()),
        "persistent data: the SQLite jobs database, and uploads unless --upload-dir is set",
    )
    p.flag(
        "jobs-db",
        "",
        "job store: empty for SQLite in --data-dir, or postgresql://USER@HOST/DB for a queue "
        "shared by several replicas",
    )
    p.flag("replica-id", "", "this replica's name in job records (default HOST:PID:random)")
    p.flag(
        "job-lease-seconds",
        30.0,
        "a running job is re-queued this long after its replica stops renewing its lease",
        type=float,
        minimum=1,
    )
    p.flag(
        "job-max-attempts",
        3,
        "runs of a job whose replica died, before it fails",
        type=int,
        minimum=1,
    )
    p.flag(
        "job-result-ttl-seconds",
        3600.0,
        "finished jobs and their results are deleted this long after they end",
        type=float,
        minimum=1,
    )
    p.flag(
        "job-poll-seconds",
        1.0,
        "how often the queue is checked for jobs submitted to other replicas",
        type=float,
        minimum=0.05,
    )
    p.flag("max-queued-durable-jobs", 10000, "jobs the queue may hold", type=int, minimum=1)


def _webhook_flags(p: EnvParser) -> None:
    """Signed callbacks when durable jobs end."""
    p.flag(
        "webhook-secret",
        "",
        "Standard Webhooks signing secret (whsec_...); generated in --data-dir when empty "
        "(replicas must share one); prefer the environment variable to the command line",
        secret=True,
    )
    p.flag(
        "webhook-allow-private",
        False,
        "let webhooks call loopback and private addresses (a local, trusted setup)",
        type=bool,
    )
    p.flag(
        "webhook-timeout-seconds",
        10.0,
        "time a webhook receiver has to answer",
        type=float,
        minimum=0.1,
    )
    p.flag("webhook-max-attempts", 6, "deliveries tried per webhook", type=int, minimum=1)


def _upload_flags(p: EnvParser) -> None:
    """Limits on what clients may send: uploads, inline files, recording length."""
    p.flag(
        "upload-dir",
        "",
        "where uploads are stored (default DATA_DIR/uploads); jobs keep their decoded audio in "
        "its spool/ (115 MB per hour)",
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


def _pools(p: EnvParser, pools: list[PoolTarget]) -> tuple[PoolTarget, ...]:
    names = [pool.model for pool in pools if pool.model]
    if len(set(names)) < len(names):
        p.error(f"--transcriber: each pool's MODEL must differ (got {', '.join(names)})")
    return tuple(pools)


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
            transcribers=_pools(p, args.transcriber),
            diarizer=args.diarizer,
            deadline_seconds=args.backend_deadline_seconds,
            deadline_per_audio_second=args.backend_deadline_per_audio_second,
            tls_ca=args.backend_tls_ca,
            tls_cert=args.backend_tls_cert,
            tls_key=args.backend_tls_key,
            tls_server_name=args.backend_tls_server_name,
        ),
        uploads=UploadsConfig(
            directory=Path(args.upload_dir or Path(args.data_dir) / "uploads"),
            max_bytes=args.max_upload_bytes,
            ttl_seconds=args.upload_ttl_seconds,
            max_total_bytes=args.max_upload_total_bytes,
            max_client_bytes=args.max_client_upload_bytes,
            max_concurrent=args.max_concurrent_uploads,
            max_client_concurrent=args.max_client_concurrent_uploads,
        ),
        jobs=JobsConfig(
            data_dir=Path(args.data_dir),
            database=args.jobs_db,
            replica=args.replica_id or default_replica(),
            lease_seconds=args.job_lease_seconds,
            max_attempts=args.job_max_attempts,
            result_ttl_seconds=args.job_result_ttl_seconds,
            poll_seconds=args.job_poll_seconds,
            max_queued=args.max_queued_durable_jobs,
            webhook_secret=args.webhook_secret,
            webhook_allow_private=args.webhook_allow_private,
            webhook_timeout_seconds=args.webhook_timeout_seconds,
            webhook_max_attempts=args.webhook_max_attempts,
        ),
        max_concurrent_jobs=args.max_concurrent_jobs,
        max_queued_jobs=args.max_queued_jobs,
        max_inline_bytes=args.max_inline_bytes,
        max_audio_seconds=args.max_audio_seconds,
        max_live_streams=args.max_live_streams,
        max_live_lag_seconds=args.max_live_lag_seconds,
        diarization_start=args.diarization_start,
    )
