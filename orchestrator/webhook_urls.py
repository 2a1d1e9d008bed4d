"""Which webhook URLs the server will call: a client must not make it reach internal hosts.

A webhook URL is chosen by whoever submits a job, and the orchestrator then sends
an HTTP request to it from inside the deployment. Without checks that is a
server-side request forgery: a client could point it at a cloud metadata
endpoint, an admin port on localhost or any host on the private network. So only
http(s) URLs without credentials are accepted, and every address the host
resolves to must be public (not loopback, private, link-local, carrier-grade
NAT, multicast, reserved or unspecified, also when hidden in an IPv6 form)
unless the server runs with `--webhook-allow-private` (the local `whospoke
serve` stack does, where the receiver usually is on the same machine).

The check runs twice. At `SubmitJob` (`validate_webhook_url`), so a client
learns at once that its URL will never be called. And at every delivery
(`GuardedResolver`), because a name's addresses can change after submission
(DNS rebinding): the delivery connects to exactly the addresses that were just
checked, so there is no window between the check and the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from whospoke.common.errors import InvalidArgument

MAX_URL_LENGTH = 2048
ALLOW_FLAG = "--webhook-allow-private"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedAddress(OSError):
    """A delivery's host resolved to an address the server may not call.

    An `OSError`, so that aiohttp reports it as a connection failure of that one
    request (`ClientConnectorDNSError`) rather than crashing the session."""


@dataclass(frozen=True)
class WebhookTarget:
    """The parts of a checked URL a delivery needs."""

    host: str
    """Lower-case, without IPv6 brackets."""
    port: int
    literal: IPAddress | None
    """The address when the host is an IP literal."""


def address_problem(ip: IPAddress) -> str | None:
    """Why `ip` is not a public address (`None` when it is), for the error message.

    IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64) are judged by that
    address, since that is where the packets end up."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_problem(embedded)
    checks: tuple[tuple[bool, str], ...] = (
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_unspecified, "unspecified"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "carrier-grade NAT"),
        (ip.is_reserved, "reserved"),
        (ip.is_private, "private"),
        (not ip.is_global, "non-public"),
    )
    return next((kind for refused, kind in checks if refused), None)


def parse_webhook_url(url: str, allow_private: bool) -> WebhookTarget:
    """Everything that can be checked without DNS: scheme, host, credentials,
    length, and the address itself when the host is an IP literal."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidArgument(f"webhook_url: longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidArgument("webhook_url: contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidArgument(f"webhook_url: not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidArgument(f"webhook_url: must be an http or https URL, not {url!r}")
    if "@" in parts.netloc:
        raise InvalidArgument("webhook_url: must not contain a user name or password")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidArgument(f"webhook_url: has no host: {url!r}")
    if port is None:
        port = 443 if scheme == "https" else 80
    literal = _ip_literal(host)
    if not allow_private:
        if literal is not None:
            _refuse_if_private(literal, f"{host} is")
        elif host == "localhost" or host.endswith(".localhost"):
            raise InvalidArgument(
                f"webhook_url: {host} is not a public address (loopback); {_allow_hint()}"
            )
    return WebhookTarget(host=host, port=port, literal=literal)


def check_webhook_url(url: str, allow_private: bool) -> str:
    """The URL when the server may call it, `""` for none; `InvalidArgument` otherwise.

    Resolves the host (blocking: call it from a worker thread, or use
    `validate_webhook_url`); every address must be public unless `allow_private`.
    A host that does not resolve is refused too, so a typo shows at submission."""
    if not url:
        return ""
    target = parse_webhook_url(url, allow_private)
    if target.literal is None:
        for ip in resolve(target.host, target.port):
            if not allow_private:
                _refuse_if_private(ip, f"{target.host} resolves to {ip}, which is")
    return url


async def validate_webhook_url(url: str, allow_private: bool) -> str:
    """`check_webhook_url` off the event loop (DNS resolution blocks)."""
    if not url:
        return ""
    return await asyncio.to_thread(check_webhook_url, url, allow_private)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to; `InvalidArgument` when none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidArgument(f"webhook_url: host {host} does not resolve ({exc})") from exc
    addresses = [_ip_literal(str(info[4][0])) for info in infos]
    found = [ip for ip in addresses if ip is not None]
    if not found:
        raise InvalidArgument(f"webhook_url: host {host} resolves to no IP address")
    return found


class GuardedResolver(AbstractResolver):
    """aiohttp resolver for deliveries: resolves like aiohttp's own, then refuses
    the whole host (`RefusedAddress`) when any address is not public. aiohttp
    connects to the addresses returned, while the request keeps the host name
    (Host header, TLS server name and certificate check), so what was checked is
    what gets called. aiohttp never asks a resolver about IP literals: the sender
    checks those itself (`parse_webhook_url`)."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return results
        for result in results:
            ip = _ip_literal(result["host"])
            problem = address_problem(ip) if ip is not None else "unparsable"
            if problem is not None:
                raise RefusedAddress(
                    f"{host.rstrip('.')} now resolves to {result['host']}, not a public "
                    f"address ({problem}); not called: {_allow_hint()}"
                )
        return results

    async def close(self) -> None:
        await self._inner.close()


def _ip_literal(host: str) -> IPAddress | None:
    """The address when `host` is an IP literal (an IPv6 zone id is dropped: such
    addresses are link-local anyway)."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _refuse_if_private(ip: IPAddress, subject: str) -> None:
    problem = address_problem(ip)
    if problem is not None:
        raise InvalidArgument(
            f"webhook_url: {subject} not a public address ({problem}); {_allow_hint()}"
        )


def _allow_hint() -> str:
    return f"the server calls such addresses only when started with {ALLOW_FLAG}"
