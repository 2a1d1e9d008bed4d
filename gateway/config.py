"""The gateway's settings: one declarative definition shared by flags and `WHOSPOKE_GATEWAY_*`.

The gateway is an HTTP server, so it does not take the gRPC servers' flags; it takes the
client side of the orchestrator's (address, TLS, an optional token of its own) and the
HTTP side's (port, HTTPS, body limit, timeouts, CORS).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from whospoke.common.config import EnvParser, MiB

DEFAULT_HTTP_PORT = 8000
DEFAULT_ORCHESTRATOR = "127.0.0.1:50060"


@dataclass(frozen=True)
class UpstreamConfig:
    """How the gateway reaches the orchestrator."""

    address: str = DEFAULT_ORCHESTRATOR
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_server_name: str = ""
    token: str = field(default="", repr=False)
    """The gateway's own token, only for what it shows anonymously (health, counts, progress
    bars): a caller's request always goes with the caller's own `Authorization` header."""
    call_timeout_seconds: float = 10.0
    """Deadline of the short calls (status, models, job lookups)."""


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_HTTP_PORT
    upstream: UpstreamConfig = UpstreamConfig()
    tls_cert: str = ""
    tls_key: str = ""
    max_upload_bytes: int = 2048 * MiB
    request_timeout_seconds: float = 3600.0
    """Deadline of one transcription, from the request to its result."""
    inline_bytes: int = 16 * MiB
    """Files up to this size go to the orchestrator inside the `Process` call; larger ones
    through `Upload` (a stream of chunks) first."""
    cors_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    grace_seconds: float = 10.0
    status_cache_seconds: float = 2.0
    """How long the orchestrator's status (models, limits) is reused between requests."""


def parser() -> EnvParser:
    p = EnvParser(
        "whospoke-gateway",
        "WHOSPOKE_GATEWAY",
        "HTTP gateway: OpenAI-compatible transcription API, jobs over HTTP, dashboard.",
    )
    p.flag("host", "127.0.0.1", "address to listen on (0.0.0.0 for all interfaces)")
    p.flag("port", DEFAULT_HTTP_PORT, "HTTP port", type=int, minimum=0, maximum=65535)
    p.flag("orchestrator", DEFAULT_ORCHESTRATOR, "orchestrator gRPC address (HOST:PORT)")
    p.flag("orchestrator-tls-ca", "", "PEM CA bundle of the orchestrator's certificate (TLS on)")
    p.flag("orchestrator-tls-cert", "", "PEM client certificate for mutual TLS")
    p.flag("orchestrator-tls-key", "", "PEM private key of --orchestrator-tls-cert")
    p.flag("orchestrator-tls-server-name", "", "name the orchestrator's certificate carries")
    p.flag(
        "orchestrator-token",
        "",
        "the gateway's own bearer token, used only for the anonymous dashboard view "
        "(health, counts, progress; never job contents)",
        secret=True,
    )
    p.flag(
        "call-timeout-seconds",
        10.0,
        "deadline of short orchestrator calls",
        type=float,
        minimum=0.1,
    )
    _http_flags(p)
    return p


def _http_flags(p: EnvParser) -> None:
    """The HTTP side: HTTPS, body limit, timeouts, CORS, logging, shutdown."""
    p.flag("tls-cert", "", "PEM certificate chain; with --tls-key serves HTTPS")
    p.flag("tls-key", "", "PEM private key of --tls-cert")
    p.flag(
        "max-upload-bytes",
        2048 * MiB,
        "largest request body accepted (413 before reading more)",
        type=int,
        minimum=1024,
    )
    p.flag(
        "request-timeout-seconds",
        3600.0,
        "longest a transcription may take, from request to result (504 past it)",
        type=float,
        minimum=1,
    )
    p.flag(
        "inline-bytes",
        16 * MiB,
        "files up to this size are sent inside the Process call, larger ones uploaded first",
        type=int,
        minimum=0,
        maximum=32 * MiB,
    )
    p.flag("cors-origins", "", "comma-separated origins allowed by CORS (empty: CORS off)")
    p.flag("log-level", "INFO", "logging level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.flag(
        "grace-seconds",
        10.0,
        "time in-flight requests get to finish on SIGTERM",
        type=float,
        minimum=0,
    )


def gateway_config(args: argparse.Namespace) -> GatewayConfig:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("--tls-cert and --tls-key must be given together")
    if bool(args.orchestrator_tls_cert) != bool(args.orchestrator_tls_key):
        raise SystemExit(
            "--orchestrator-tls-cert and --orchestrator-tls-key must be given together"
        )
    upstream = UpstreamConfig(
        address=args.orchestrator,
        tls_ca=args.orchestrator_tls_ca,
        tls_cert=args.orchestrator_tls_cert,
        tls_key=args.orchestrator_tls_key,
        tls_server_name=args.orchestrator_tls_server_name,
        token=args.orchestrator_token.strip(),
        call_timeout_seconds=args.call_timeout_seconds,
    )
    origins = tuple(o.strip() for o in args.cors_origins.split(",") if o.strip())
    return GatewayConfig(
        host=args.host,
        port=args.port,
        upstream=upstream,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        max_upload_bytes=args.max_upload_bytes,
        request_timeout_seconds=args.request_timeout_seconds,
        inline_bytes=args.inline_bytes,
        cors_origins=origins,
        log_level=args.log_level,
        grace_seconds=args.grace_seconds,
    )
