"""What the CLI says when something fails: one line, a hint, and a documented exit code.

Scripts branch on exit codes and people read the first line, so every failure is
turned into a `CliError` in one place (`from_rpc` for server answers, the checks
for local input) and printed as `whospoke: error: <what>. <hint>`; tracebacks are
only for `--debug`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # grpc is imported by the commands, after main() has quietened its logging
    import grpc

OK = 0
SERVER_ERROR = 1
"""The server answered with an error status, or could not be reached."""
USAGE = 2
"""Bad flags, impossible combinations, or a local input that cannot be sent."""
PARTIAL = 3
"""A result arrived but a requested stage failed (unless --allow-partial)."""
INTERRUPTED = 130

DEFAULT_PORT = 50060
"""The orchestrator's default port, which `--server` adds when none is given."""
BACKENDS = ("transcriber:", "diarizer:")
"""How the orchestrator prefixes errors that come from one of its backends."""


class CliError(Exception):
    """A failure reported as one line; `details` are printed after it, indented."""

    exit_code = SERVER_ERROR

    def __init__(self, what: str, hint: str = "", details: tuple[str, ...] = ()) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint
        self.details = details

    def line(self) -> str:
        text = self.what.rstrip(". ")
        if not self.hint:
            return f"whospoke: error: {text}"
        stop = "" if text.endswith(("!", "?")) else "."
        return f"whospoke: error: {text}{stop} {self.hint}"


class UsageError(CliError):
    """A problem with the command line or a local file: nothing was sent (exit 2)."""

    exit_code = USAGE


def one_line(text: str) -> str:
    """Server messages may span lines; the CLI promises one."""
    return " ".join(text.split())


def from_rpc(
    error: grpc.aio.AioRpcError, server: str, *, tls: bool, timeout: float | None, token: bool
) -> CliError:
    """The status name and details of a failed call, with a hint for the usual causes."""
    import grpc

    code = error.code()
    details = one_line(error.details() or "")
    if code == grpc.StatusCode.UNAVAILABLE and _connection_failure(details):
        return _unreachable(details, server, tls)
    return status_error(code.name, details, server, timeout=timeout, token=token)


def status_error(
    code: str, details: str, server: str, *, timeout: float | None = None, token: bool = False
) -> CliError:
    """A status by name (a failed call's, or a failed job's `JobError.code`), with its hint.

    A job that failed on the server ends the way its `Process` call would have, so
    `whospoke job` reports it in the same words as `whospoke process`.
    """
    details = one_line(details)
    from_backend = details.startswith(BACKENDS)
    hint = ""
    if code == "UNIMPLEMENTED" and not from_backend:
        hint = (
            f"{server} is not an orchestrator: is it a transcriber or diarizer port? "
            f"The orchestrator listens on {DEFAULT_PORT} by default."
        )
    elif code == "UNAUTHENTICATED":
        hint = (
            "The token was refused: check --token or WHOSPOKE_TOKEN."
            if token
            else "Pass --token or set WHOSPOKE_TOKEN."
        )
    elif code == "DEADLINE_EXCEEDED" and not from_backend:
        hint = (
            f"The call ran past --timeout {timeout:g} s: raise it, or leave it out."
            if timeout is not None
            else "The server gave up waiting; see its log."
        )
    elif from_backend:
        backend = details.split(":", 1)[0]
        hint = f"The orchestrator's {backend} failed: see `whospoke health --server {server}`."
    return CliError(f"{code}: {details or 'no details'}", hint)


_CONNECTING = (
    "failed to connect to all addresses",
    "errors resolving",
    "DNS resolution failed",
    "Socket closed",
    "Connection reset",
    "connections to all backends failing",
)
"""How gRPC's client describes failing to set up a connection (never a server's answer)."""


def _connection_failure(details: str) -> bool:
    return not details.startswith(BACKENDS) and any(text in details for text in _CONNECTING)


def _unreachable(details: str, server: str, tls: bool) -> CliError:
    """Why no connection to `server` could be made, and what to change."""
    lowered = details.lower()
    what, hint = f"cannot reach the orchestrator at {server}", ""
    if "certificate_verify_failed" in lowered:
        what = f"TLS handshake with {server} failed: its certificate is not trusted"
        hint = "Pass --tls-ca FILE with the CA that signed the server's certificate."
    elif "wrong_version_number" in lowered:
        what = f"TLS handshake with {server} failed: the server does not speak TLS"
        hint = "Leave out --tls and --tls-ca (and WHOSPOKE_TLS*), or point --server at a TLS port."
    elif "peer certificate" in lowered or "peer name" in lowered:
        what = f"TLS handshake with {server} failed: the certificate is for another name"
        hint = "Connect by a name the certificate covers, or pass --tls-server-name NAME."
    elif "certificate required" in lowered or "certificate_required" in lowered:
        what = f"TLS handshake with {server} failed: it wants a client certificate"
        hint = "The server may require a client certificate: pass --tls-cert FILE --tls-key FILE."
    elif "handshake" in lowered:
        what = f"TLS handshake with {server} failed ({_last_error(details)})"
        hint = "Check --tls-ca, --tls-cert and --tls-key."
    elif "socket closed" in lowered or "connection reset" in lowered:
        what = f"{server} closed the connection while it was being set up"
        hint = (
            "The server may require a client certificate: pass --tls-cert FILE --tls-key FILE."
            if tls
            else "If the server uses TLS, pass --tls (or --tls-ca FILE)."
        )
    elif "resolv" in lowered or "dns" in lowered:
        what = f"cannot resolve the host name of {server}"
        hint = "Check the host in --server HOST:PORT (or WHOSPOKE_SERVER)."
    else:
        reason = "connection refused" if "connection refused" in lowered else _last_error(details)
        what = f"{what} ({reason})"
    if not hint:
        hint = "Is `whospoke serve` running? Pass --server HOST:PORT (or set WHOSPOKE_SERVER)."
    return CliError(f"UNAVAILABLE: {what}", hint)


def _last_error(details: str) -> str:
    """The part of a gRPC connection error after its address: the actual reason."""
    reason = details.rsplit("last error:", 1)[-1].strip()
    return reason.removesuffix(": OK")[-200:]
