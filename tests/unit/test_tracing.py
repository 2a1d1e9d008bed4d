"""Tracing is off, and costs nothing, unless an OTLP endpoint is set; then the service is named."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import TracerProvider

from whospoke.common import tracing
from whospoke.common.tracing_channel import TracedStreamsChannel

OTEL_VARIABLES = [name for name in os.environ if name.startswith("OTEL_")]


@pytest.fixture(autouse=True)
def no_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_* variable and no provider, before and after each test."""
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name)
    tracing.use(None)
    yield
    tracing.use(None)


async def test_without_an_endpoint_nothing_is_installed() -> None:
    assert not tracing.wanted()
    assert tracing.setup("orchestrator") is None
    assert tracing.server_interceptors() == []
    channel = tracing.client_channel("127.0.0.1:9", None, [])
    try:
        assert not isinstance(channel, TracedStreamsChannel)
    finally:
        await channel.close()
    with tracing.job_span("job", 1):
        assert not trace.get_current_span().is_recording()
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def test_without_an_endpoint_the_sdk_is_not_even_imported() -> None:
    script = (
        "import sys; from whospoke.common import server, tracing; "
        "assert tracing.setup('transcriber') is None; "
        "assert not [m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
        "'opentelemetry.exporter', 'opentelemetry.instrumentation'))], 'imported'"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60)


@pytest.mark.parametrize(
    ("variables", "wanted"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_an_otlp_endpoint_turns_tracing_on(variables: dict[str, str], wanted: bool) -> None:
    assert tracing.wanted(variables) is wanted


@pytest.mark.parametrize(
    ("variables", "name"),
    [
        ({}, "whospoke-diarizer"),
        ({"OTEL_SERVICE_NAME": "asr-diarizer"}, "asr-diarizer"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes"}, "from-attributes"),
    ],
)
async def test_with_an_endpoint_the_service_is_named(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], name: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    provider = tracing.setup("diarizer")
    try:
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes[SERVICE_NAME] == name
        assert tracing.setup("diarizer") is provider  # once per process
        assert len(tracing.server_interceptors()) == 1
        channel = tracing.client_channel("127.0.0.1:9", None, [])
        assert isinstance(channel, TracedStreamsChannel)
        await channel.close()
        assert trace.get_tracer_provider() is not provider  # the global one is left alone
    finally:
        if isinstance(provider, TracerProvider):
            provider.shutdown()


def test_health_checks_and_reflection_are_not_traced() -> None:
    def traced(method: str | bytes) -> bool:
        return tracing._traced(SimpleNamespace(method=method))

    assert traced("/whospoke.v1.Orchestrator/Process")
    assert traced(b"/whospoke.v1.Transcriber/GetInfo")  # grpc.aio client details: bytes
    assert not traced("/grpc.health.v1.Health/Check")
    assert not traced("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
