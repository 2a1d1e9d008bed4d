"""Transcriber pools behind one orchestrator: `ProcessOptions.model` picks the pool, an
unknown model fails before the job is queued, and `GetStatus` lists each pool and each
replica with its own health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import grpc
import pytest

from orchestrator.backends import BackendSettings, GrpcTranscriber
from orchestrator.pools import Pool, TranscriberPools
from tests.fakes import FakeDiarizer, FakeTranscriber, FakeTranscriptionEngine, harness, wav_bytes
from transcriber.config import ModelConfig, TranscriberConfig
from transcriber.server import build_spec
from whospoke.common.config import ServerConfig
from whospoke.common.metrics import Metrics
from whospoke.common.server import RunningServer, start_server
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import jobs_pb2_grpc as jobs_grpc
from whospoke.v1 import orchestrator_pb2 as pb


async def process(stub: object, model: str) -> pb.ProcessResult:
    request = pb.ProcessRequest(audio=wav_bytes(2), options=pb.ProcessOptions(model=model))
    events = [e async for e in stub.Process(request)]  # type: ignore[attr-defined]
    return events[-1].result  # type: ignore[no-any-return]


async def test_the_model_picks_the_pool_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    base, tiny = FakeTranscriber(model="base"), FakeTranscriber(model="tiny.en")
    pools = TranscriberPools([Pool("base", base), Pool("", tiny)])
    async with harness(pools, FakeDiarizer(), tmp_path) as h:
        assert (await process(h.stub, "")).models.transcription_model == "base"
        assert (await process(h.stub, "tiny.en")).models.transcription_model == "tiny.en"
        assert (await process(h.stub, "base")).models.transcription_model == "base"
        assert (len(base.options), len(tiny.options)) == (2, 1)

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await process(h.stub, "large-v3")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details() == (
            "options.model: 'large-v3' is not served here; served: 'base', 'tiny.en'"
        )
        jobs = jobs_grpc.JobsStub(h.channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await jobs.SubmitJob(
                jpb.SubmitJobRequest(audio=wav_bytes(1), options=pb.ProcessOptions(model="small"))
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "options.model: 'small'" in (caught.value.details() or "")

        status = await h.stub.GetStatus(pb.GetStatusRequest())
        transcribers = [b for b in status.backends if b.name == "transcriber"]
        assert [(b.pool, list(b.models)) for b in transcribers] == [
            ("base", ["base"]),
            ("tiny.en", ["tiny.en"]),
        ]
        assert [b.name for b in status.backends][-1] == "diarizer"


@asynccontextmanager
async def transcriber_server(model: str) -> AsyncIterator[RunningServer]:
    """A real transcriber server (fake engine) serving `model`."""
    config = TranscriberConfig(server=ServerConfig(port=0), model=ModelConfig(model=model))
    metrics = Metrics("transcriber")
    engine = FakeTranscriptionEngine(model=model)
    running = await start_server(config.server, build_spec(config, engine, metrics), metrics)
    await running.set_serving(True)
    try:
        yield running
    finally:
        await running.stop(0)


async def test_pools_over_grpc_are_named_by_getinfo_and_each_replica_is_checked(
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(transcriber_server("base"))
        second = await stack.enter_async_context(transcriber_server("base"))
        tiny = await stack.enter_async_context(transcriber_server("tiny.en"))
        replicas = f"ipv4:127.0.0.1:{first.port},127.0.0.1:{second.port}"
        clients = [
            GrpcTranscriber(BackendSettings(replicas)),
            GrpcTranscriber(BackendSettings(f"localhost:{tiny.port}")),
        ]
        for client in clients:
            stack.push_async_callback(client.close)
        pools = TranscriberPools([Pool("", client) for client in clients])
        h = await stack.enter_async_context(harness(pools, FakeDiarizer(), tmp_path))

        assert (await process(h.stub, "tiny.en")).models.transcription_model == "tiny.en"
        assert (await process(h.stub, "")).models.transcription_model == "base"
        status = await h.stub.GetStatus(pb.GetStatusRequest())
        base_pool, tiny_pool = status.backends[:2]
        assert (base_pool.pool, tiny_pool.pool) == ("base", "tiny.en")
        assert [(r.address, r.serving) for r in base_pool.replicas] == [
            (f"127.0.0.1:{first.port}", True),
            (f"127.0.0.1:{second.port}", True),
        ]
        assert f"127.0.0.1:{tiny.port}" in [r.address for r in tiny_pool.replicas]

        await second.stop(0)
        status = await h.stub.GetStatus(pb.GetStatusRequest())
        by_address = {r.address: r for r in status.backends[0].replicas}
        assert by_address[f"127.0.0.1:{first.port}"].serving
        down = by_address[f"127.0.0.1:{second.port}"]
        assert not down.serving and down.detail.startswith("UNAVAILABLE")
        # the pool still serves through its other replica
        assert (await process(h.stub, "base")).models.transcription_model == "base"
