"""The replicas behind one backend address, each checked on its own.

A backend address may name several replicas (`ipv4:` lists, or a DNS name that a
Kubernetes headless Service resolves to one address per pod); gRPC's
`round_robin` policy spreads calls over them but does not say which ones it sees.
`GetStatus` resolves the address the way gRPC does and asks each replica's health
service directly, so an operator sees which pod is down, not only that some
calls fail.
"""

from __future__ import annotations

import asyncio
import socket

import grpc

RESOLVE_TIMEOUT_SECONDS = 3.0
DEFAULT_PORT = "443"
"""gRPC's port for a target that names none."""


def parse_target(target: str) -> tuple[list[tuple[str, str]], bool]:
    """(host, port) pairs a target names, and whether the hosts need a DNS lookup.

    Forms: `ipv4:A:P,B:P`, `ipv6:[A]:P,...`, `dns:///HOST:P` (or `dns://AUTH/HOST:P`,
    `dns:HOST:P`) and plain `HOST:P`. Unix sockets name no network replicas: none.
    """
    if target.startswith(("unix:", "unix-abstract:", "vsock:")):
        return [], False
    for scheme in ("ipv4:", "ipv6:"):
        if target.startswith(scheme):
            entries = target[len(scheme) :].split(",")
            return [_host_port(entry) for entry in entries if entry], False
    rest = target.removeprefix("dns:")
    if rest.startswith("//"):
        rest = rest[2:].partition("/")[2]
    return [_host_port(rest)], True


def _host_port(entry: str) -> tuple[str, str]:
    """`HOST:PORT` or `[V6]:PORT` (port optional) as (host, port)."""
    if entry.startswith("["):
        host, _, tail = entry[1:].partition("]")
        return host, tail.removeprefix(":") or DEFAULT_PORT
    host, colon, port = entry.rpartition(":")
    if not colon:
        return entry, DEFAULT_PORT
    return host, port or DEFAULT_PORT


def _address(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve(target: str) -> list[str]:
    """The replica addresses `target` names now, in order, each once.

    Raises OSError when a DNS name does not resolve (within
    `RESOLVE_TIMEOUT_SECONDS`).
    """
    pairs, lookup = parse_target(target)
    if not lookup:
        return list(dict.fromkeys(_address(host, port) for host, port in pairs))
    loop = asyncio.get_running_loop()
    addresses: list[str] = []
    for host, port in pairs:
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM),
                RESOLVE_TIMEOUT_SECONDS,
            )
        except TimeoutError:
            raise OSError(f"resolving {host} took over {RESOLVE_TIMEOUT_SECONDS:g} s") from None
        addresses.extend(_address(str(info[4][0]), port) for info in infos)
    return list(dict.fromkeys(addresses))


class ReplicaChannels:
    """A channel per replica address, for health checks only (calls go through the
    load-balanced channel); channels of replicas that left the address are closed."""

    def __init__(
        self,
        credentials: grpc.ChannelCredentials | None,
        server_name: str,
    ) -> None:
        self._credentials = credentials
        self._server_name = server_name
        self._channels: dict[str, grpc.aio.Channel] = {}

    def channel(self, address: str) -> grpc.aio.Channel:
        if address not in self._channels:
            options = [("grpc.ssl_target_name_override", self._server_name)]
            if self._credentials is not None:
                self._channels[address] = grpc.aio.secure_channel(
                    address, self._credentials, options=options if self._server_name else None
                )
            else:
                self._channels[address] = grpc.aio.insecure_channel(address)
        return self._channels[address]

    async def keep(self, addresses: list[str]) -> None:
        """Close the channels of replicas not in `addresses`."""
        gone = [a for a in self._channels if a not in addresses]
        await asyncio.gather(*(self._channels.pop(a).close() for a in gone))

    async def close(self) -> None:
        await self.keep([])
