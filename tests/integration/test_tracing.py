"""Tracing across the orchestrator and its backends: one trace per `Process` or job.

Real gRPC servers in this process (the orchestrator, a transcriber and a
diarizer with fake engines) and real backend clients, all reporting to an
in-memory exporter installed with `tracing.use` (never the global provider).
The chain asserted is the one an operator reads in Jaeger: the `Process` span
at the root, each backend call's CLIENT span under it, the backend's SERVER span
under that, all in one trace; a durable job's attempt span stands where
`Process` stands, and carries the job id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from diarizer.config import DiarizerConfig
from diarizer.engine import DiarizerModelConfig
from diarizer.server import build_spec as diarizer_spec
from orchestrator.backends import BackendSettings, GrpcDiarizer, GrpcTranscriber
from tests.fakes import (
    FakeDiarizationEngine,
    FakeTranscriptionEngine,
    Harness,
    harness,
    wav_bytes,
)
from tests.polling import until
from transcriber.config import ModelConfig, TranscriberConfig
from transcriber.server import build_spec as transcriber_spec
from whospoke.common import tracing
from whospoke.common.config import ServerConfig
from whospoke.common.metrics import Metrics
from whospoke.common.server import start_server
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import jobs_pb2_grpc as jobs_grpc
from whospoke.v1 import orchestrator_pb2 as pb

PROCESS = "/whospoke.v1.Orchestrator/Process"
TRANSCRIBE = "/whospoke.v1.Transcriber/Transcribe"
DIARIZE = "/whospoke.v1.Diarizer/Diarize"


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """Every span of the test's servers and clients, kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()


@asynccontextmanager
async def traced_stack(tmp: Path) -> AsyncIterator[Harness]:
    """The orchestrator over real transcriber and diarizer servers (fake engines)."""
    t_config = TranscriberConfig(server=ServerConfig(port=0), model=ModelConfig(model="fake"))
    d_config = DiarizerConfig(server=ServerConfig(port=0), model=DiarizerModelConfig())
    t_metrics, d_metrics = Metrics("transcriber"), Metrics("diarizer")
    async with AsyncExitStack() as stack:
        ports = []
        for config, spec, metrics in (
            (
                t_config.server,
                transcriber_spec(t_config, FakeTranscriptionEngine(), t_metrics),
                t_metrics,
            ),
            (
                d_config.server,
                diarizer_spec(d_config, FakeDiarizationEngine(), d_metrics),
                d_metrics,
            ),
        ):
            running = await start_server(config, spec, metrics)
            stack.push_async_callback(running.stop, 0)
            await running.set_serving(True)
            ports.append(running.port)
        transcriber = GrpcTranscriber(BackendSettings(f"127.0.0.1:{ports[0]}"))
        diarizer = GrpcDiarizer(BackendSettings(f"127.0.0.1:{ports[1]}"))
        stack.push_async_callback(transcriber.close)
        stack.push_async_callback(diarizer.close)
        yield await stack.enter_async_context(harness(transcriber, diarizer, tmp))


def named(spans: list[ReadableSpan], name: str, kind: SpanKind) -> ReadableSpan:
    found = [s for s in spans if s.name == name and s.kind == kind]
    assert len(found) == 1, f"{len(found)} {kind.name} spans named {name}"
    return found[0]


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """The spans above `span`, nearest first."""
    by_id = {s.context.span_id: s for s in spans}
    chain = []
    while span.parent is not None:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


async def ended(exporter: InMemorySpanExporter, *names: str) -> list[ReadableSpan]:
    """The finished spans, once a SERVER span of each of `names` is among them (the
    backends' spans end as their handlers return, just after the caller's last event)."""

    async def present() -> bool:
        done = {(s.name, s.kind) for s in exporter.get_finished_spans()}
        return all((name, SpanKind.SERVER) in done for name in names)

    await until(present, f"the spans of {names}")
    return list(exporter.get_finished_spans())


async def test_one_process_is_one_trace_rooted_at_its_process_span(
    exported: InMemorySpanExporter, tmp_path: Path
) -> None:
    async with traced_stack(tmp_path) as h:
        exported.clear()  # what loading asked is not this call's
        request = pb.ProcessRequest(audio=wav_bytes(2))
        events = [e async for e in h.stub.Process(request)]
        assert events[-1].HasField("result")
        spans = await ended(exported, PROCESS, TRANSCRIBE, DIARIZE)

    assert len({s.context.trace_id for s in spans}) == 1
    process = named(spans, PROCESS, SpanKind.SERVER)
    assert process.parent is None
    for method in (TRANSCRIBE, DIARIZE):
        server = named(spans, method, SpanKind.SERVER)
        client = named(spans, method, SpanKind.CLIENT)
        assert ancestors(server, spans)[0] is client
        assert process in ancestors(server, spans)
        assert (client.attributes or {})["rpc.grpc.status_code"] == 0
    assert not [s for s in spans if "grpc.health" in s.name]


async def test_a_durable_job_is_one_trace_under_its_attempt_carrying_the_job_id(
    exported: InMemorySpanExporter, tmp_path: Path
) -> None:
    async with traced_stack(tmp_path) as h:
        jobs = jobs_grpc.JobsStub(h.channel)
        job_id = (await jobs.SubmitJob(jpb.SubmitJobRequest(audio=wav_bytes(2)))).job_id
        async for _ in jobs.WatchJob(jpb.WatchJobRequest(job_id=job_id), timeout=60):
            pass
        spans = await ended(exported, TRANSCRIBE, DIARIZE, "/whospoke.v1.Jobs/WatchJob")

    submit = named(spans, "/whospoke.v1.Jobs/SubmitJob", SpanKind.SERVER)
    watch = named(spans, "/whospoke.v1.Jobs/WatchJob", SpanKind.SERVER)
    attempt = named(spans, "whospoke.job", SpanKind.INTERNAL)
    for span in (submit, watch, attempt):
        assert (span.attributes or {})[tracing.JOB_ID] == job_id
    assert (attempt.attributes or {})[tracing.JOB_ATTEMPT] == 1
    for method in (TRANSCRIBE, DIARIZE):
        server = named(spans, method, SpanKind.SERVER)
        assert attempt in ancestors(server, spans)
        assert server.context.trace_id == attempt.context.trace_id


async def test_an_uploaded_files_process_span_names_the_upload(
    exported: InMemorySpanExporter, tmp_path: Path
) -> None:
    async with traced_stack(tmp_path) as h:

        async def chunks() -> AsyncIterator[pb.UploadChunk]:
            yield pb.UploadChunk(data=wav_bytes(1), filename="a.wav")

        upload_id = (await h.stub.Upload(chunks())).upload_id
        request = pb.ProcessRequest(upload_id=upload_id)
        [e async for e in h.stub.Process(request)]
        spans = await ended(exported, PROCESS, TRANSCRIBE)

    process = named(spans, PROCESS, SpanKind.SERVER)
    assert (process.attributes or {})[tracing.UPLOAD_ID] == upload_id
