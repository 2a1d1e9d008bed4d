"""TLS, mutual TLS between the orchestrator and its backends, and bearer-token auth.

Certificates are generated at test time with openssl (a CA, a server certificate
for localhost and a client certificate). The backends are the real servicers with
fake engines; the orchestrator talks to them through its real gRPC clients.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from diarizer.config import DiarizerConfig
from diarizer.engine import DiarizerModelConfig
from diarizer.server import build_spec as diarizer_spec
from orchestrator.__main__ import backend_settings
from orchestrator.backends import GrpcDiarizer, GrpcTranscriber
from orchestrator.config import BackendsConfig, OrchestratorConfig, PoolTarget, UploadsConfig
from orchestrator.server import build_spec as orchestrator_spec
from tests.fakes import FakeDiarizationEngine as FakeDiarizerEngine
from tests.fakes import FakeTranscriptionEngine as FakeTranscriberEngine
from tests.fakes import wav_bytes
from transcriber.config import ModelConfig, TranscriberConfig
from transcriber.server import build_spec as transcriber_spec
from whospoke.common.config import ServerConfig
from whospoke.common.metrics import Metrics
from whospoke.common.server import RunningServer, start_server
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import orchestrator_pb2_grpc as pb_grpc

TOKEN = "s3cret-token-for-tests"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def signed(
    directory: Path, name: str, ca: Path, ca_key: Path, extensions: str
) -> tuple[Path, Path]:
    key, request, cert = (directory / f"{name}.{s}" for s in ("key", "csr", "pem"))
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={name}",
        "-keyout",
        str(key),
        "-out",
        str(request),
    )
    openssl(
        "x509",
        "-req",
        "-in",
        str(request),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = d / "ca.pem", d / "ca.key"
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=whospoke test CA",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
    )
    server = signed(d, "localhost", ca, ca_key, "subjectAltName=DNS:localhost\n")
    client = signed(d, "orchestrator", ca, ca_key, "extendedKeyUsage=clientAuth\n")
    return Pki(ca, *server, *client)


@asynccontextmanager
async def backends(pki: Pki) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    """Transcriber and diarizer servicers (fake engines) that require client certificates."""
    server = ServerConfig(
        port=0,
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        tls_client_ca=str(pki.ca),
    )
    t_metrics, d_metrics = Metrics("transcriber"), Metrics("diarizer")
    t_config = TranscriberConfig(server=server, model=ModelConfig(model="fake"))
    d_config = DiarizerConfig(server=server, model=DiarizerModelConfig())
    transcriber = await start_server(
        server, transcriber_spec(t_config, FakeTranscriberEngine(), t_metrics), t_metrics
    )
    diarizer = await start_server(
        server, diarizer_spec(d_config, FakeDiarizerEngine(), d_metrics), d_metrics
    )
    for running in (transcriber, diarizer):
        await running.set_serving(True)
    try:
        yield transcriber, diarizer
    finally:
        await transcriber.stop(0)
        await diarizer.stop(0)


@asynccontextmanager
async def orchestrator(
    config: OrchestratorConfig,
) -> AsyncIterator[tuple[RunningServer, GrpcTranscriber, GrpcDiarizer]]:
    transcriber = GrpcTranscriber(backend_settings(config, config.backends.transcribers[0].target))
    diarizer = GrpcDiarizer(backend_settings(config, config.backends.diarizer))
    metrics = Metrics("orchestrator")
    spec = orchestrator_spec(config, transcriber, diarizer, metrics)
    running = await start_server(config.server, spec, metrics)
    await running.set_serving(True)
    try:
        yield running, transcriber, diarizer
    finally:
        await running.stop(0)
        await transcriber.close()
        await diarizer.close()


def orchestrator_config(
    tmp: Path, backends: BackendsConfig, **server: object
) -> OrchestratorConfig:
    return OrchestratorConfig(
        server=ServerConfig(port=0, **server),  # type: ignore[arg-type]
        backends=backends,
        uploads=UploadsConfig(directory=tmp),
    )


async def test_mutual_tls_between_orchestrator_and_backends(pki: Pki, tmp_path: Path) -> None:
    async with backends(pki) as (transcriber, diarizer):
        addresses = (
            (PoolTarget("", f"localhost:{transcriber.port}"),),
            f"localhost:{diarizer.port}",
        )
        trusted = BackendsConfig(
            *addresses,
            tls_ca=str(pki.ca),
            tls_cert=str(pki.client_cert),
            tls_key=str(pki.client_key),
        )
        async with (
            orchestrator(orchestrator_config(tmp_path, trusted)) as (running, *_),
            grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
        ):
            stub = pb_grpc.OrchestratorStub(channel)
            events = [e async for e in stub.Process(pb.ProcessRequest(audio=wav_bytes(2)))]
            status = await stub.GetStatus(pb.GetStatusRequest())
        assert events[-1].result.audio_duration_seconds == pytest.approx(2)
        assert events[-1].result.text and all(b.serving for b in status.backends)

        no_client_cert = BackendsConfig(*addresses, tls_ca=str(pki.ca))
        async with (
            orchestrator(orchestrator_config(tmp_path, no_client_cert)) as (running, *_),
            grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
        ):
            stub = pb_grpc.OrchestratorStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                request = pb.ProcessRequest(
                    audio=wav_bytes(1), options=pb.ProcessOptions(skip_diarization=True)
                )
                [e async for e in stub.Process(request, timeout=10)]
            status = await stub.GetStatus(pb.GetStatusRequest())
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "transcriber:" in (caught.value.details() or "")
        assert not any(b.serving for b in status.backends)


async def test_bearer_tokens(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = orchestrator_config(tmp_path, BackendsConfig(), auth_tokens=(TOKEN, "other"))
    async with (
        orchestrator(config) as (running, *_),
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        stub = pb_grpc.OrchestratorStub(channel)
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetStatus(pb.GetStatusRequest(), metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "bearer token" in (caught.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [e async for e in stub.Process(pb.ProcessRequest(audio=b"x"))]
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        good = (("authorization", f"Bearer {TOKEN}"),)
        status = await stub.GetStatus(pb.GetStatusRequest(), metadata=good, timeout=10)
        assert status.max_concurrent_jobs == 1
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert TOKEN not in caplog.text


async def test_health_can_require_the_token(tmp_path: Path) -> None:
    config = orchestrator_config(tmp_path, BackendsConfig(), auth_tokens=(TOKEN,), auth_health=True)
    async with (
        orchestrator(config) as (running, *_),
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health.Check(health_pb2.HealthCheckRequest())
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = await health.Check(
            health_pb2.HealthCheckRequest(), metadata=(("authorization", f"Bearer {TOKEN}"),)
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_tokens_come_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.config import load_config

    tokens = tmp_path / "tokens"
    tokens.write_text("# team tokens\nalpha\n\nbeta  # ci\n")
    config = load_config(["--auth-tokens-file", str(tokens)])
    assert config.server.auth_tokens == ("alpha", "beta")
    assert "alpha" not in repr(config)
    monkeypatch.setenv("WHOSPOKE_ORCHESTRATOR_AUTH_TOKENS", "gamma, delta")
    assert load_config([]).server.auth_tokens == ("gamma", "delta")
    with pytest.raises(SystemExit):
        load_config(["--backend-tls-cert", "c.pem", "--backend-tls-key", "k.pem"])
