"""GPU statistics from NVML (`whospoke.common.gpu`), with a fake NVML: no GPU needed.

`FakeNvml` returns scripted figures and records what it was asked, so the
sampler's averages, its device mapping and its failure handling are checked
exactly; the integration tests (tests/integration/test_device_stats.py) use it
behind real servicers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from whospoke.common.gpu import (
    GpuMonitor,
    GpuSamples,
    Nvml,
    cuda_index,
    load_pynvml,
    nvml_device,
    summarize,
)

GIB = 1 << 30
SAMPLER = "whospoke-gpu-sampler"


@dataclass(frozen=True)
class Utilization:
    gpu: int


@dataclass(frozen=True)
class Memory:
    used: int
    total: int


class FakeNvml:
    """NVML on one made-up device: figures taken in turn from the given sequences.

    `sampled` is set once `wait_for` samples have been taken, so a test can wait
    for the sampler instead of sleeping; `fail_at` makes that sample raise.
    """

    def __init__(
        self,
        utilization: Sequence[int] = (10, 50, 30),
        used: Sequence[int] = (1 * GIB, 3 * GIB, 2 * GIB),
        total: int = 8 * GIB,
        init_error: Exception | None = None,
        wait_for: int = 1,
        fail_at: int | None = None,
    ) -> None:
        self.utilization, self.used, self.total = utilization, used, total
        self.init_error, self.wait_for, self.fail_at = init_error, wait_for, fail_at
        self.inits = 0
        self.lookups: list[tuple[str, int | str]] = []
        self.utilizations: list[int] = []
        self.memory: list[int] = []
        self.sampled = threading.Event()

    def nvmlInit(self) -> None:
        self.inits += 1
        if self.init_error is not None:
            raise self.init_error

    def nvmlDeviceGetHandleByIndex(self, index: int, /) -> object:
        self.lookups.append(("index", index))
        return ("handle", index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str, /) -> object:
        self.lookups.append(("uuid", uuid))
        return ("handle", uuid)

    def nvmlDeviceGetName(self, handle: object, /) -> str | bytes:
        return b"NVIDIA Fake 80GB"

    def nvmlDeviceGetUtilizationRates(self, handle: object, /) -> Utilization:
        if self.fail_at is not None and len(self.utilizations) == self.fail_at:
            raise RuntimeError("GPU is lost")
        value = self.utilization[len(self.utilizations) % len(self.utilization)]
        self.utilizations.append(value)
        return Utilization(value)

    def nvmlDeviceGetMemoryInfo(self, handle: object, /) -> Memory:
        value = self.used[len(self.memory) % len(self.used)]
        self.memory.append(value)
        if len(self.memory) >= self.wait_for:
            self.sampled.set()
        return Memory(value, self.total)


def monitor(nvml: FakeNvml, interval: float = 3600.0, visible: str | None = None) -> GpuMonitor:
    """A monitor on `nvml`; the long default interval leaves only the start and end samples."""
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    return GpuMonitor(lambda: nvml, interval, environ)


def samplers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == SAMPLER]


@pytest.mark.parametrize(
    ("device", "index", "expected"),
    [("cuda", 0, 0), ("cuda", 2, 2), ("cuda:1", 0, 1), ("cpu", 0, None), ("auto", 1, None)],
)
def test_cuda_index_of_a_resolved_device(device: str, index: int, expected: int | None) -> None:
    assert cuda_index(device, index) == expected


@pytest.mark.parametrize(
    ("index", "visible", "expected"),
    [
        (1, None, 1),
        (1, "", 1),
        (1, "2,3", 3),
        (0, " 3 , 1", 3),
        (2, "0,1", None),
        (0, "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6", "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6"),
        (1, "0,MIG-4a2f", "MIG-4a2f"),
        (0, "all", None),
    ],
)
def test_cuda_visible_devices_maps_cuda_indexes_to_nvml(
    index: int, visible: str | None, expected: int | str | None
) -> None:
    assert nvml_device(index, visible) == expected


def test_summary_averages_and_peaks() -> None:
    samples = GpuSamples("GPU", 8 * GIB, [10.0, 50.0, 30.0], [1 * GIB, 3 * GIB, 2 * GIB])
    stats = summarize(2, samples, 0.5)
    assert stats is not None
    assert (stats.gpu_index, stats.gpu_name, stats.samples) == (2, "GPU", 3)
    assert stats.utilization_percent_avg == pytest.approx(30.0)
    assert stats.utilization_percent_max == 50.0
    assert (stats.memory_used_bytes_avg, stats.memory_used_bytes_max) == (2 * GIB, 3 * GIB)
    assert stats.memory_total_bytes == 8 * GIB and stats.sample_interval_seconds == 0.5
    assert not stats.backend  # the orchestrator names the backend
    assert summarize(0, GpuSamples(), 1.0) is None


async def test_samples_while_the_block_runs_and_summarises_them() -> None:
    nvml = FakeNvml(wait_for=5)
    async with monitor(nvml, interval=0.001).watch(0) as watch:
        assert await asyncio.to_thread(nvml.sampled.wait, 10)
    stats = watch.stats
    assert stats is not None and not samplers()
    assert stats.samples == len(nvml.utilizations) >= 6  # five, then one at the end
    assert stats.utilization_percent_avg == pytest.approx(
        sum(nvml.utilizations) / len(nvml.utilizations)
    )
    assert stats.utilization_percent_max == max(nvml.utilizations) == 50
    assert stats.memory_used_bytes_avg == round(sum(nvml.memory) / len(nvml.memory))
    assert stats.memory_used_bytes_max == 3 * GIB and stats.memory_total_bytes == 8 * GIB
    assert stats.gpu_name == "NVIDIA Fake 80GB" and stats.sample_interval_seconds == 0.001


async def test_a_short_stream_has_a_sample_at_its_start_and_its_end() -> None:
    nvml = FakeNvml()
    async with monitor(nvml).watch(0) as watch:
        pass  # ends at once: the hour-long interval is not waited for
    assert watch.stats is not None and watch.stats.samples == 2
    assert watch.stats.utilization_percent_avg == pytest.approx(30.0)
    assert watch.stats.memory_used_bytes_max == 3 * GIB


async def test_on_the_cpu_there_are_no_statistics_and_nvml_is_not_touched() -> None:
    nvml = FakeNvml()
    async with monitor(nvml).watch(None) as watch:
        pass
    assert watch.stats is None and nvml.inits == 0 and not samplers()


async def test_nvml_failing_to_start_gives_none_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nvml = FakeNvml(init_error=RuntimeError("NVML Shared Library Not Found"))
    gpus = monitor(nvml)
    with caplog.at_level(logging.WARNING, "whospoke.common.gpu"):
        for _ in range(3):
            async with gpus.watch(0) as watch:
                pass
            assert watch.stats is None
    assert nvml.inits == 1  # not retried for every stream
    assert [r.getMessage() for r in caplog.records] == [
        "NVML unavailable, jobs carry no GPU statistics: NVML Shared Library Not Found"
    ]


async def test_nvml_is_initialised_once_for_concurrent_streams() -> None:
    nvml = FakeNvml()
    gpus = monitor(nvml)

    async def stream() -> int:
        async with gpus.watch(0) as watch:
            await asyncio.sleep(0)
        assert watch.stats is not None
        return watch.stats.samples

    assert await asyncio.gather(*(stream() for _ in range(4))) == [2, 2, 2, 2]
    assert nvml.inits == 1


async def test_the_device_is_looked_up_through_cuda_visible_devices() -> None:
    nvml = FakeNvml()
    async with monitor(nvml, visible="2,3").watch(1) as watch:
        pass
    assert nvml.lookups == [("index", 3)]
    assert watch.stats is not None and watch.stats.gpu_index == 1  # CUDA's index, as configured
    uuid = "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6"
    async with monitor(nvml, visible=uuid).watch(0):
        pass
    assert nvml.lookups[-1] == ("uuid", uuid)


async def test_a_device_missing_from_cuda_visible_devices_gives_none() -> None:
    nvml = FakeNvml()
    async with monitor(nvml, visible="0").watch(1) as watch:
        pass
    assert watch.stats is None and nvml.lookups == []


async def test_a_sampling_failure_keeps_the_samples_taken_before_it() -> None:
    nvml = FakeNvml(fail_at=1)
    async with monitor(nvml).watch(0) as watch:
        pass
    assert watch.stats is not None and watch.stats.samples == 1
    failing = FakeNvml(fail_at=0)
    async with monitor(failing).watch(0) as watch:
        pass
    assert watch.stats is None


async def test_the_sampler_thread_stops_when_the_stream_is_cancelled() -> None:
    nvml = FakeNvml()
    gpus = monitor(nvml)
    entered = asyncio.Event()

    async def stream() -> None:
        async with gpus.watch(0):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.ensure_future(stream())
    await entered.wait()
    assert await asyncio.to_thread(nvml.sampled.wait, 10) and samplers()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not samplers()  # joined before the cancellation went on
    assert len(nvml.utilizations) == 2


def test_pynvml_has_every_function_the_protocol_names() -> None:
    """The fake must not drift from the real bindings (nvidia-ml-py, module `pynvml`)."""
    real = load_pynvml()
    wanted = [name for name in vars(Nvml) if name.startswith("nvml")]
    assert len(wanted) == 6
    assert all(callable(getattr(real, name)) for name in wanted)
