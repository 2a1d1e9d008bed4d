"""`python -m whospoke.common.healthcheck ADDRESS [SERVICE]`: exit 0 when SERVING.

A gRPC health probe for container health checks, so images need no extra binary.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str = "", timeout: float = 3.0) -> bool:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main() -> None:
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: python -m whospoke.common.healthcheck ADDRESS [SERVICE]")
    service = sys.argv[2] if len(sys.argv) == 3 else ""
    raise SystemExit(0 if check(sys.argv[1], service) else 1)


if __name__ == "__main__":
    main()
