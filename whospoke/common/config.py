"""Flags with environment-variable fallbacks, and the settings every server shares.

Every flag has an environment variable (`WHOSPOKE_<SERVICE>_<FLAG>`); the flag
wins over the variable, the variable over the default. Parsed values end up in
frozen dataclasses that are passed explicitly: no module-level settings.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MiB = 1 << 20


class EnvParser(argparse.ArgumentParser):
    """An ArgumentParser whose `flag` method also reads a default from the environment."""

    def __init__(self, prog: str, env_prefix: str, description: str) -> None:
        super().__init__(
            prog=prog,
            description=description,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        self.env_prefix = env_prefix
        self.env_vars: dict[str, str] = {}

    def flag(
        self,
        name: str,
        default: Any,
        help: str,
        type: Callable[[str], Any] = str,
        choices: list[str] | None = None,
    ) -> None:
        """Add `--name`, whose default comes from `<PREFIX>_<NAME>` when that is set."""
        env = f"{self.env_prefix}_{name.upper().replace('-', '_')}"
        self.env_vars[name] = env
        raw = os.environ.get(env)
        value = default
        if raw is not None and raw != "":
            value = _parse_bool(raw) if type is bool else type(raw)
        if type is bool:
            self.add_argument(
                f"--{name}",
                default=value,
                action=argparse.BooleanOptionalAction,
                help=f"{help} [env {env}]",
            )
            return
        self.add_argument(
            f"--{name}", default=value, type=type, choices=choices, help=f"{help} [env {env}]"
        )


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


@dataclass(frozen=True)
class ServerConfig:
    """Network, TLS, metrics and shutdown settings of one gRPC server."""

    host: str = "127.0.0.1"
    port: int = 0
    metrics_port: int = 0
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    grace_seconds: float = 10.0
    max_message_bytes: int = 8 * MiB
    log_level: str = "INFO"
    auth_tokens: tuple[str, ...] = field(default=(), repr=False)
    auth_health: bool = False
    stream_idle_seconds: float = 30.0
    """A client stream with no message for this long is ended (DEADLINE_EXCEEDED)."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def add_server_flags(
    parser: EnvParser, port: int, metrics_port: int, max_message_bytes: int = 8 * MiB
) -> None:
    """The flags of `ServerConfig`, with this service's default ports."""
    parser.flag("host", "127.0.0.1", "address to listen on (0.0.0.0 for all interfaces)")
    parser.flag("port", port, "gRPC port (0 picks a free one)", type=int)
    parser.flag("metrics-port", metrics_port, "Prometheus /metrics port (0: off)", type=int)
    parser.flag("tls-cert", "", "PEM certificate chain; with --tls-key enables TLS")
    parser.flag("tls-key", "", "PEM private key of --tls-cert")
    parser.flag("tls-client-ca", "", "PEM CA bundle; when set, clients must present a cert")
    parser.flag("grace-seconds", 10.0, "time in-flight calls get to finish on SIGTERM", type=float)
    parser.flag(
        "max-message-bytes", max_message_bytes, "largest gRPC message accepted or sent", type=int
    )
    parser.flag("log-level", "INFO", "logging level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.flag(
        "auth-tokens-file",
        "",
        f"file of bearer tokens (one per line) that calls must carry; or set "
        f"{parser.env_prefix}_AUTH_TOKENS to a comma-separated list. Off when neither is set",
    )
    parser.set_defaults(env_prefix=parser.env_prefix)
    parser.flag(
        "auth-health", False, "require the token for health checks and reflection too", type=bool
    )
    parser.flag(
        "stream-idle-seconds",
        30.0,
        "end a client stream (audio, upload) that sends no message for this long",
        type=float,
    )


def add_audio_stream_flags(parser: EnvParser) -> None:
    """The flags of a service that reads audio chunk streams."""
    parser.flag(
        "min-chunk-seconds",
        0.1,
        "shortest audio chunk accepted (the last one excepted); bounds per-message work",
        type=float,
    )


def server_config(args: argparse.Namespace) -> ServerConfig:
    """Build the `ServerConfig` from parsed `add_server_flags` flags."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("--tls-cert and --tls-key must be given together")
    if args.stream_idle_seconds <= 0:
        raise SystemExit("--stream-idle-seconds must be positive")
    return ServerConfig(
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        grace_seconds=args.grace_seconds,
        max_message_bytes=args.max_message_bytes,
        log_level=args.log_level,
        auth_tokens=_tokens(args.auth_tokens_file, args.env_prefix),
        auth_health=args.auth_health,
        stream_idle_seconds=args.stream_idle_seconds,
    )


def _tokens(path: str, prefix: str) -> tuple[str, ...]:
    from whospoke.common.auth import read_tokens

    try:
        return read_tokens(path, os.environ.get(f"{prefix}_AUTH_TOKENS", ""))
    except OSError as error:
        raise SystemExit(f"--auth-tokens-file: cannot read {path}: {error.strerror}") from None
