"""Flags with environment-variable fallbacks, and the settings every server shares.

Every flag has an environment variable (`WHOSPOKE_<SERVICE>_<FLAG>`); the flag
wins over the variable, the variable over the default. Parsed values end up in
frozen dataclasses that are passed explicitly: no module-level settings.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from whospoke.common.priority import MAX_NICENESS

MiB = 1 << 20
MAX_CONNECTION_AGE_SECONDS = (2**31 - 1) // 1000
"""gRPC takes connection ages in int32 milliseconds: about 24.8 days."""


class EnvParser(argparse.ArgumentParser):
    """An ArgumentParser whose `flag` method also reads a default from the environment.

    A flag and its variable share one definition: the same type, choices and
    range apply to both, and a bad value of either exits 2 with a message naming
    the flag and the variable (a variable is never accepted silently).
    """

    def __init__(self, prog: str, env_prefix: str, description: str) -> None:
        super().__init__(
            prog=prog,
            description=description,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        self.env_prefix = env_prefix
        self.env_vars: dict[str, str] = {}
        self._env_errors: list[str] = []
        self._list_defaults: dict[str, list[Any]] = {}

    def flag(
        self,
        name: str,
        default: Any,
        help: str,
        type: Callable[[str], Any] = str,
        choices: list[str] | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
        secret: bool = False,
        repeated: bool = False,
    ) -> None:
        """Add `--name`, whose default comes from `<PREFIX>_<NAME>` when that is set.

        `minimum` and `maximum` bound numeric values (inclusive). A `secret`'s value
        (from the environment) is never shown by `--help`. A `repeated` flag may be
        given several times and gives a list (`default` is one); its variable holds
        the values separated by whitespace.
        """
        env = f"{self.env_prefix}_{name.upper().replace('-', '_')}"
        self.env_vars[name] = env
        parse = _parse_bool if type is bool else _checked(type, choices, minimum, maximum)
        raw = os.environ.get(env)
        value = default
        if raw is not None and raw != "":
            try:
                value = [parse(part) for part in raw.split()] if repeated else parse(raw)
            except (argparse.ArgumentTypeError, ValueError) as error:
                self._env_errors.append(f"--{name} (from {env}={raw!r}): {error}")
        if repeated:
            self._list_defaults[name.replace("-", "_")] = value
            where = f"{help}; repeatable [env {env}, space-separated]"
            self.add_argument(
                f"--{name}", action="append", type=parse, metavar=name.upper(), help=where
            )
            return
        where = f"{help} [env {env}]" + ("%(default).0s" if secret else "")
        if type is bool:
            self.add_argument(
                f"--{name}", default=value, action=argparse.BooleanOptionalAction, help=where
            )
            return
        metavar = "{" + ",".join(choices) + "}" if choices else name.upper()
        self.add_argument(f"--{name}", default=value, type=parse, metavar=metavar, help=where)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._env_errors:
            self.error("; ".join(self._env_errors))
        parsed, rest = super().parse_known_args(args, namespace)
        for dest, default in self._list_defaults.items():
            if getattr(parsed, dest, None) is None:
                setattr(parsed, dest, list(default))
        return parsed, rest


def _checked(
    type: Callable[[str], Any],
    choices: list[str] | None,
    minimum: float | None,
    maximum: float | None,
) -> Callable[[str], Any]:
    """`type` plus the choice and range checks, for flags and variables alike."""

    def parse(raw: str) -> Any:
        try:
            value = type(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a valid {getattr(type, '__name__', 'value')}: {raw!r}"
            ) from None
        if choices is not None and value not in choices:
            raise argparse.ArgumentTypeError(f"{raw!r} is not one of {', '.join(choices)}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"{raw} is below the minimum of {minimum:g}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{raw} is above the maximum of {maximum:g}")
        return value

    parse.__name__ = getattr(type, "__name__", "value")
    return parse


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
    max_connection_age_seconds: float = 0.0
    """A connection this old is asked to close (GOAWAY), so that clients reconnect and
    re-resolve DNS (new replicas get traffic); 0: never."""
    max_connection_age_grace_seconds: float = 0.0
    """Time the calls in flight on such a connection get before it is closed; 0: unbounded."""
    nice: int = 0
    """Unix niceness given to every thread at start (0: unchanged); see `common.priority`."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def add_server_flags(
    parser: EnvParser, port: int, metrics_port: int, max_message_bytes: int = 8 * MiB
) -> None:
    """The flags of `ServerConfig`, with this service's default ports."""
    parser.flag("host", "127.0.0.1", "address to listen on (0.0.0.0 for all interfaces)")
    parser.flag("port", port, "gRPC port (0 picks a free one)", type=int, minimum=0, maximum=65535)
    parser.flag(
        "metrics-port",
        metrics_port,
        "Prometheus /metrics port (0: off)",
        type=int,
        minimum=0,
        maximum=65535,
    )
    parser.flag("tls-cert", "", "PEM certificate chain; with --tls-key enables TLS")
    parser.flag("tls-key", "", "PEM private key of --tls-cert")
    parser.flag("tls-client-ca", "", "PEM CA bundle; when set, clients must present a cert")
    parser.flag(
        "grace-seconds",
        10.0,
        "time in-flight calls get to finish on SIGTERM",
        type=float,
        minimum=0,
    )
    parser.flag(
        "max-message-bytes",
        max_message_bytes,
        "largest gRPC message accepted or sent",
        type=int,
        minimum=1024,
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
        minimum=0.01,
    )
    _connection_age_flags(parser)
    parser.flag(
        "nice",
        0,
        "CPU niceness of every thread (0: unchanged, 19: the lowest priority): a model that "
        "shares cores with another yields them while that one has work",
        type=int,
        minimum=0,
        maximum=MAX_NICENESS,
    )


def _connection_age_flags(parser: EnvParser) -> None:
    """GOAWAY to old connections: clients reconnect, re-resolve DNS and reach new replicas."""
    parser.flag(
        "max-connection-age-seconds",
        0.0,
        "ask a client to reconnect (GOAWAY) once its connection is this old, so that it "
        "re-resolves DNS and new replicas get calls (0: never)",
        type=float,
        minimum=0,
        maximum=MAX_CONNECTION_AGE_SECONDS,
    )
    parser.flag(
        "max-connection-age-grace-seconds",
        0.0,
        "time calls in flight on such a connection get before it is closed (0: unbounded)",
        type=float,
        minimum=0,
        maximum=MAX_CONNECTION_AGE_SECONDS,
    )


def add_audio_stream_flags(parser: EnvParser) -> None:
    """The flags of a service that reads audio chunk streams."""
    parser.flag(
        "min-chunk-seconds",
        0.1,
        "shortest audio chunk accepted (the last one excepted); bounds per-message work",
        type=float,
        minimum=0,
        maximum=10,
    )


def server_config(args: argparse.Namespace) -> ServerConfig:
    """Build the `ServerConfig` from parsed `add_server_flags` flags."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("--tls-cert and --tls-key must be given together")
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
        max_connection_age_seconds=args.max_connection_age_seconds,
        max_connection_age_grace_seconds=args.max_connection_age_grace_seconds,
        nice=args.nice,
    )


def _tokens(path: str, prefix: str) -> tuple[str, ...]:
    from whospoke.common.auth import read_tokens

    try:
        return read_tokens(path, os.environ.get(f"{prefix}_AUTH_TOKENS", ""))
    except OSError as error:
        raise SystemExit(f"--auth-tokens-file: cannot read {path}: {error.strerror}") from None
