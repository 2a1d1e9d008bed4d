"""Where and how the CLI connects: the orchestrator's address, TLS and the bearer token.

Everything here is settled before any call is made, so that a typo in an address
or a missing certificate file is a usage error (exit 2) rather than a connection
failure reported by gRPC much later.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from whospoke.cli.errors import DEFAULT_PORT, UsageError

DEFAULT_SERVER = f"127.0.0.1:{DEFAULT_PORT}"
MAX_MESSAGE_BYTES = 256 << 20
_SCHEME = re.compile(r"^(dns|unix|unix-abstract|ipv4|ipv6|vsock|xds):", re.IGNORECASE)
"""gRPC target schemes: such targets are passed through untouched."""
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Connection:
    """A resolved `--server` with its credentials; `channel()` opens it."""

    server: str
    tls: bool = False
    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    server_name: str = ""
    token: str = field(default="", repr=False)

    def channel(self) -> grpc.aio.Channel:
        options: list[tuple[str, str | int]] = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        if not self.tls:
            return grpc.aio.insecure_channel(self.server, options=options)
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        credentials = grpc.ssl_channel_credentials(self.ca, self.key, self.cert)
        return grpc.aio.secure_channel(self.server, credentials, options=options)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The bearer token, sent with plaintext and TLS alike (as the server allows)."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def server_address(raw: str, source: str = "--server") -> str:
    """`raw` with the orchestrator's default port added where it names none.

    `localhost` becomes `localhost:50060` and `[::1]` (or `::1`) `[::1]:50060`;
    gRPC targets with a scheme (`dns:///…`, `unix:…`, `ipv4:…`) are left alone.
    """
    text = raw.strip()
    example = f"Give HOST[:PORT], such as localhost:{DEFAULT_PORT}."
    if not text:
        raise UsageError(f"{source} is empty", example)
    if _SCHEME.match(text):
        return text
    if "://" in text:
        raise UsageError(
            f"{source} takes HOST[:PORT], not a URL: {text!r}",
            "Leave out the scheme (and pass --tls for TLS).",
        )
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or not host or (rest and not rest.startswith(":")):
            raise UsageError(f"{source}: cannot read {text!r}", example)
        if not rest:
            return f"[{host}]:{DEFAULT_PORT}"
        _port(rest[1:], text, source)
        return text
    if text.count(":") > 1:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise UsageError(f"{source}: cannot read {text!r}", example) from None
        return f"[{text}]:{DEFAULT_PORT}"
    host, colon, port = text.partition(":")
    if not host:
        raise UsageError(f"{source}: no host in {text!r}", example)
    if not colon:
        return f"{text}:{DEFAULT_PORT}"
    _port(port, text, source)
    return text


def _port(port: str, text: str, source: str) -> None:
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(
            f"{source}: {port!r} in {text!r} is not a port (1 to 65535)",
            f"Give HOST[:PORT], such as localhost:{DEFAULT_PORT}.",
        )


def connection(args: argparse.Namespace) -> Connection:
    """The `--server`, `--tls*` and `--token` flags (or their variables), checked."""
    raw, source = _flag_or_env(args.server, "--server", "WHOSPOKE_SERVER")
    server = server_address(raw or DEFAULT_SERVER, source)
    ca_path, ca_source = _flag_or_env(args.tls_ca, "--tls-ca", "WHOSPOKE_TLS_CA")
    cert_path, cert_source = _flag_or_env(args.tls_cert, "--tls-cert", "WHOSPOKE_TLS_CERT")
    key_path, key_source = _flag_or_env(args.tls_key, "--tls-key", "WHOSPOKE_TLS_KEY")
    name, _ = _flag_or_env(args.tls_server_name, "--tls-server-name", "WHOSPOKE_TLS_SERVER_NAME")
    if bool(cert_path) != bool(key_path):
        raise UsageError(
            "--tls-cert and --tls-key go together",
            "Give both (a client certificate and its key, for mutual TLS) or neither.",
        )
    tls = args.tls or _env_bool("WHOSPOKE_TLS") or bool(ca_path or cert_path or name)
    token = args.token or os.environ.get("WHOSPOKE_TOKEN", "")
    return Connection(
        server=server,
        tls=tls,
        ca=_pem(ca_path, ca_source) if ca_path else None,
        cert=_pem(cert_path, cert_source) if cert_path else None,
        key=_pem(key_path, key_source) if key_path else None,
        server_name=name,
        token=token.strip(),
    )


def _flag_or_env(value: str | None, flag: str, env: str) -> tuple[str, str]:
    """The flag's value, else the variable's; with where it came from, for messages."""
    if value is not None:
        return value, flag
    from_env = os.environ.get(env, "")
    return from_env, f"{flag} (from {env})" if from_env else flag


def _env_bool(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise UsageError(f"{name}={raw!r} is not a boolean", f"Set {name} to 1 or 0.")


def _pem(path_text: str, source: str) -> bytes:
    """A PEM file's bytes; read here so that a bad path is a usage error, not a handshake."""
    path = Path(path_text).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{source}: no such file: {path_text}", "Check the path.") from None
    except IsADirectoryError:
        raise UsageError(f"{source}: {path_text} is a directory", "Give a PEM file.") from None
    except OSError as error:
        raise UsageError(
            f"{source}: cannot read {path_text} ({error.strerror})", "Check its permissions."
        ) from None
    if b"-----BEGIN " not in data:
        raise UsageError(
            f"{source}: {path_text} is not a PEM file",
            "Give the certificate or key in PEM form (text starting with -----BEGIN).",
        )
    return data
