"""Stand-ins for grpcurl and grpc-health-probe, so the README's commands run in CI, and a
wrapper around the real curl that points the README's URLs at the test's gateway.

Neither tool is installed here. The README tests put wrappers named `grpcurl` and
`grpc-health-probe` on PATH that run this module; it accepts the subset of the real tools'
flags the README uses (anything else fails, so a new flag must be added here knowingly) and
works like grpcurl does: from **server reflection alone**, with no proto files. A command
fails as grpcurl would when its service, method or symbol is not on that server, or when a
field of its `-d` JSON is not in the method's input message (`json_format.Parse` rejects
unknown fields), and the call itself must succeed.

The tests choose free ports, so `WHOSPOKE_README_PORTS` (`50060=41234,50061=...`) maps the
README's port numbers to them; a port with no mapping is an error. Each invocation is
appended to `$WHOSPOKE_README_LOG` (JSON lines) so the tests can count them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import descriptor, json_format, message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

GRPCURL_BOOLS = frozenset({"plaintext", "v"})
GRPCURL_VALUES = frozenset({"d", "H", "max-time"})


class UsageError(Exception):
    """A command the real tool would refuse, or one this stand-in does not know."""


def mapped(address: str) -> str:
    """The test's address for one of the README's `host:port` addresses."""
    host, _, port = address.rpartition(":")
    ports = dict(
        pair.split("=", 1) for pair in os.environ["WHOSPOKE_README_PORTS"].split(",") if pair
    )
    if port not in ports:
        raise UsageError(f"no test server stands for port {port} (known: {sorted(ports)})")
    return f"{host or 'localhost'}:{ports[port]}"


def go_flags(
    argv: Sequence[str], bools: frozenset[str], values: frozenset[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """Go's flag syntax: `-name`, `-name value` or `-name=value`, up to the first argument."""
    flags: dict[str, list[str]] = {}
    index = 0
    while index < len(argv) and argv[index].startswith("-") and argv[index] != "-":
        name, has_value, value = argv[index].lstrip("-").partition("=")
        if name in bools:
            flags.setdefault(name, []).append("true")
        elif name in values:
            if not has_value:
                index += 1
                if index == len(argv):
                    raise UsageError(f"flag needs an argument: -{name}")
                value = argv[index]
            flags.setdefault(name, []).append(value)
        else:
            raise UsageError(f"flag provided but not supported by the test stand-in: -{name}")
        index += 1
    return flags, list(argv[index:])


def record(entry: dict[str, Any]) -> None:
    log = os.environ.get("WHOSPOKE_README_LOG")
    if log:
        with open(log, "a") as file:
            file.write(json.dumps(entry) + "\n")


def grpcurl(argv: Sequence[str]) -> int:
    flags, rest = go_flags(argv, GRPCURL_BOOLS, GRPCURL_VALUES)
    if "plaintext" not in flags:
        raise UsageError("the test servers speak plaintext: grpcurl would fail its TLS handshake")
    if not rest:
        raise UsageError("no address given")
    address, verb, symbols = rest[0], (rest[1:2] or [""])[0], rest[2:]
    record({"tool": "grpcurl", "argv": list(argv)})
    timeout = float(flags.get("max-time", ["30"])[-1])
    with grpc.insecure_channel(mapped(address)) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = DescriptorPool(database)
        if verb in ("", "list"):
            return list_symbols(database, pool, symbols)
        if verb == "describe":
            return describe(pool, symbols, set(database.get_services()))
        if symbols:
            raise UsageError(f"too many arguments after {verb}")
        service = verb.replace("/", ".").rpartition(".")[0]
        if service not in database.get_services():
            # In-process test servers share one descriptor pool, so reflection would resolve
            # any of our services; a real server lists only its own.
            raise UsageError(f"{address} does not serve {service}")
        metadata = tuple(_header(h) for h in flags.get("H", []))
        data = flags.get("d", [""])[-1]
        return invoke(channel, pool, verb, data, metadata, timeout)


def list_symbols(
    database: ProtoReflectionDescriptorDatabase, pool: DescriptorPool, symbols: list[str]
) -> int:
    if not symbols:
        print("\n".join(sorted(database.get_services())))
        return 0
    if symbols[0] not in database.get_services():
        raise UsageError(f"the server does not serve {symbols[0]}")
    service = pool.FindServiceByName(symbols[0])
    print("\n".join(m.full_name for m in service.methods))
    return 0


def describe(pool: DescriptorPool, symbols: list[str], served: set[str]) -> int:
    finders = (
        pool.FindServiceByName,
        lambda name: find_method(pool, name),
        pool.FindMessageTypeByName,
        pool.FindEnumTypeByName,
    )
    for symbol in symbols:
        for find in finders:
            try:
                found = find(symbol)
            except (KeyError, UsageError):
                continue
            service = getattr(found, "containing_service", found)
            if (
                isinstance(service, descriptor.ServiceDescriptor)
                and service.full_name not in served
            ):
                continue
            print(f"{found.full_name} is a {type(found).__name__}")
            break
        else:
            print(f"Failed to resolve symbol {symbol!r}", file=sys.stderr)
            return 1
    return 0


def find_method(pool: DescriptorPool, name: str) -> descriptor.MethodDescriptor:
    """`pkg.Service/Method` or `pkg.Service.Method`, through the service (which makes the
    pool fetch its file by reflection; looking the method up directly does not)."""
    service, _, method = name.replace("/", ".").rpartition(".")
    found: descriptor.MethodDescriptor | None = pool.FindServiceByName(service).methods_by_name.get(
        method
    )
    if found is None:
        raise UsageError(f"service {service!r} has no method {method!r}")
    return found


def _header(header: str) -> tuple[str, str]:
    name, _, value = header.partition(":")
    return name.strip().lower(), value.strip()


def invoke(
    channel: grpc.Channel,
    pool: DescriptorPool,
    target: str,
    data: str,
    metadata: tuple[tuple[str, str], ...],
    timeout: float,
) -> int:
    """Resolve `pkg.Service/Method` by reflection, parse the JSON into its input, call it."""
    method = find_method(pool, target)
    if method.client_streaming:
        raise UsageError(f"{target} streams requests: not supported by the test stand-in")
    if data == "@":
        data = sys.stdin.read()
    request = message_factory.GetMessageClass(method.input_type)()
    json_format.Parse(data or "{}", request)
    response = message_factory.GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    serialize, parse = type(request).SerializeToString, response.FromString
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, serialize, parse)
            for reply in stream(request, timeout=timeout, metadata=metadata):
                print(json_format.MessageToJson(reply))
        else:
            unary = channel.unary_unary(path, serialize, parse)
            print(json_format.MessageToJson(unary(request, timeout=timeout, metadata=metadata)))
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        details = error.details()
        print(f"ERROR:\n  Code: {code.name}\n  Message: {details}", file=sys.stderr)
        return 64 + int(code.value[0])
    return 0


def health_probe(argv: Sequence[str]) -> int:
    """grpc-health-probe: exit 0 when SERVING, 4 otherwise; 2 (no connection) or 3 (the call
    failed) as the real probe."""
    flags, rest = go_flags(argv, frozenset(), frozenset({"addr", "service"}))
    if rest or "addr" not in flags:
        raise UsageError("usage: grpc-health-probe -addr=HOST:PORT [-service=NAME]")
    record({"tool": "grpc-health-probe", "argv": list(argv)})
    request = health_pb2.HealthCheckRequest(service=flags.get("service", [""])[-1])
    with grpc.insecure_channel(mapped(flags["addr"][-1])) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=10)
        except grpc.RpcError as error:
            print(f"error: health rpc failed: {error}", file=sys.stderr)
            return 2 if error.code() == grpc.StatusCode.UNAVAILABLE else 3
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"status: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 4


CURL_URL = re.compile(r"^(https?://)?(localhost|127\.0\.0\.1)(:\d+)(/.*)?$")


def curl(argv: Sequence[str]) -> int:
    """The real curl, with the README's `localhost:PORT` URLs pointed at the test's servers
    and `--fail-with-body` added, so an HTTP error fails the block as it would fail a script
    that checks."""
    record({"tool": "curl", "argv": list(argv)})
    args = []
    for arg in argv:
        match = CURL_URL.match(arg)
        if match:
            host = mapped(f"{match[2]}{match[3]}")
            arg = f"{match[1] or 'http://'}{host}{match[4] or ''}"
        args.append(arg)
    real = shutil.which("curl", path=os.environ.get("WHOSPOKE_README_REAL_PATH"))
    if real is None:
        raise UsageError("curl is not installed")
    return subprocess.run([real, "--fail-with-body", *args], check=False).returncode


def main(argv: Sequence[str]) -> int:
    tools = {"grpcurl": grpcurl, "grpc-health-probe": health_probe, "curl": curl}
    try:
        return tools[argv[0]](argv[1:])
    except (UsageError, KeyError, json_format.ParseError) as error:
        print(f"{argv[0]} (test stand-in): {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
