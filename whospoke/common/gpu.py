"""GPU use of one stream, sampled from NVML while a backend works on it.

An operator sizing GPUs wants to know how busy the device was during a job and
how much of its memory the job needed; the model libraries do not say, but the
driver does, through NVML (`nvidia-ml-py`). A `GpuMonitor` (one per process)
initialises NVML once, lazily and from a worker thread; `GpuMonitor.watch`
samples utilisation and memory in a background thread while a stream is
processed and leaves a `DeviceStats` when it ends (`None` on the CPU, or when
NVML is unusable: that is logged once and never fails a request). `snapshot`
takes a single sample, for a service's `GetInfo` (the GPU as it is now).

NVML sees the whole device: utilisation and memory include every process on
it, other streams of the same backend and its loaded model too.

NVML numbers devices itself, in PCI bus order and ignoring
`CUDA_VISIBLE_DEVICES`, so a CUDA index is translated first: with
`CUDA_VISIBLE_DEVICES=2,3`, CUDA device 1 is NVML device 3. An entry that is a
UUID (`GPU-…`, `MIG-…`) is looked up with `nvmlDeviceGetHandleByUUID`, which
needs the whole UUID (CUDA also accepts a prefix; a prefix is not found, which
is logged and the statistics left out). CUDA's own order matches NVML's only
with `CUDA_DEVICE_ORDER=PCI_BUS_ID` (the default, fastest first, usually agrees
on machines with identical GPUs).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, cast

from whospoke.v1 import audio_pb2

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 1.0
"""Seconds between samples; NVML's utilisation figure covers about the last second."""


class Utilization(Protocol):
    @property
    def gpu(self) -> int:
        """Percent of the last sample period in which a kernel ran."""
        ...


class MemoryInfo(Protocol):
    @property
    def used(self) -> int: ...

    @property
    def total(self) -> int: ...


class Nvml(Protocol):
    """The few NVML functions used (the `pynvml` module has them), so tests pass a fake."""

    def nvmlInit(self) -> None: ...

    def nvmlDeviceGetHandleByIndex(self, index: int, /) -> object: ...

    def nvmlDeviceGetHandleByUUID(self, uuid: str, /) -> object: ...

    def nvmlDeviceGetName(self, handle: object, /) -> str | bytes: ...

    def nvmlDeviceGetUtilizationRates(self, handle: object, /) -> Utilization: ...

    def nvmlDeviceGetMemoryInfo(self, handle: object, /) -> MemoryInfo: ...


def load_pynvml() -> Nvml:
    """The real NVML bindings, imported only when a stream runs on a GPU."""
    return cast(Nvml, importlib.import_module("pynvml"))


def cuda_index(device: str, index: int = 0) -> int | None:
    """The CUDA device index of a resolved device ("cuda", "cuda:1"), None off CUDA.

    `index` is used when `device` names no index itself (faster-whisper's
    separate `device_index`).
    """
    kind, _, number = device.partition(":")
    if kind != "cuda":
        return None
    return int(number) if number.isdigit() else index


def nvml_device(index: int, visible: str | None) -> int | str | None:
    """What NVML calls CUDA device `index`: an NVML index, a UUID, or None if unknown.

    `visible` is `CUDA_VISIBLE_DEVICES`: unset (or empty) leaves indexes as they
    are; otherwise its `index`-th entry names the device.
    """
    if visible is None or not visible.strip():
        return index
    entries = [entry.strip() for entry in visible.split(",")]
    if index >= len(entries):
        return None
    entry = entries[index]
    if entry.isdigit():
        return int(entry)
    if entry.startswith(("GPU-", "MIG-")):
        return entry
    return None


@dataclass
class GpuSamples:
    """What one stream's sampler read: the device's name and size, and one entry per sample."""

    name: str = ""
    total: int = 0
    utilization: list[float] = field(default_factory=list)
    memory: list[int] = field(default_factory=list)


def summarize(gpu_index: int, samples: GpuSamples, interval: float) -> audio_pb2.DeviceStats | None:
    """Average and peak of the samples; None when none could be taken."""
    count = len(samples.utilization)
    if count == 0:
        return None
    return audio_pb2.DeviceStats(
        gpu_index=gpu_index,
        gpu_name=samples.name,
        utilization_percent_avg=sum(samples.utilization) / count,
        utilization_percent_max=max(samples.utilization),
        memory_used_bytes_avg=round(sum(samples.memory) / count),
        memory_used_bytes_max=max(samples.memory),
        memory_total_bytes=samples.total,
        samples=count,
        sample_interval_seconds=interval,
    )


class GpuMonitor:
    """The process's NVML session and the settings every stream's sampler shares."""

    def __init__(
        self,
        load: Callable[[], Nvml] = load_pynvml,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.interval = interval
        self._load = load
        self._environ = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._nvml: Nvml | None = None
        self._failed = False
        self._warned: set[str] = set()

    def watch(self, gpu_index: int | None) -> GpuWatch:
        """Sample CUDA device `gpu_index` for the `async with` block (nothing when None)."""
        return GpuWatch(self, gpu_index)

    def nvml(self) -> Nvml | None:
        """NVML, initialised on first use (blocking: call from a worker thread)."""
        with self._lock:
            if self._nvml is None and not self._failed:
                try:
                    nvml = self._load()
                    nvml.nvmlInit()
                except Exception as error:
                    self._failed = True
                    logger.warning("NVML unavailable, jobs carry no GPU statistics: %s", error)
                else:
                    self._nvml = nvml
            return self._nvml

    def handle(self, nvml: Nvml, gpu_index: int) -> object | None:
        """NVML's handle of CUDA device `gpu_index`, through `CUDA_VISIBLE_DEVICES`."""
        visible = self._environ.get("CUDA_VISIBLE_DEVICES")
        device = nvml_device(gpu_index, visible)
        if device is None:
            self.warn_once(
                f"unmapped {gpu_index}",
                f"CUDA device {gpu_index} not found in CUDA_VISIBLE_DEVICES={visible!r}; "
                "no GPU statistics",
            )
            return None
        if isinstance(device, str):
            return nvml.nvmlDeviceGetHandleByUUID(device)
        return nvml.nvmlDeviceGetHandleByIndex(device)

    def warn_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        logger.warning("%s", message)


PROCESS_MONITOR = GpuMonitor()
"""The one monitor of a service process (NVML is initialised once per process)."""


class GpuWatch:
    """Samples one device in a thread for the duration of an `async with` block.

    A sample is taken when the block starts, every `interval` seconds, and when
    it ends, so even a short stream has two. Leaving the block (normally, on an
    error or on cancellation) stops the thread and waits for it in another
    thread, never on the event loop; `stats` holds the result afterwards.
    """

    def __init__(self, monitor: GpuMonitor, gpu_index: int | None) -> None:
        self.stats: audio_pb2.DeviceStats | None = None
        self._monitor = monitor
        self._index = gpu_index
        self._stop = threading.Event()
        self._samples = GpuSamples()
        self._thread: threading.Thread | None = None

    async def __aenter__(self) -> GpuWatch:
        if self._index is not None:
            self._thread = threading.Thread(
                target=self._run, args=(self._index,), name="whospoke-gpu-sampler", daemon=True
            )
            self._thread.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        thread = self._thread
        if thread is None or self._index is None:
            return
        self._stop.set()
        joined = asyncio.ensure_future(asyncio.to_thread(thread.join))
        try:
            await asyncio.shield(joined)
        except asyncio.CancelledError:
            await asyncio.wait({joined})  # the thread has ended before the cancel goes on
            raise
        self.stats = summarize(self._index, self._samples, self._monitor.interval)

    def _run(self, index: int) -> None:
        try:
            nvml = self._monitor.nvml()
            handle = None if nvml is None else self._monitor.handle(nvml, index)
            if nvml is None or handle is None:
                return
            self._samples.name = device_name(nvml, handle)
            sample(nvml, handle, self._samples)
            while not self._stop.wait(self._monitor.interval):
                sample(nvml, handle, self._samples)
            sample(nvml, handle, self._samples)
        except Exception as error:
            self._monitor.warn_once(
                f"sampling {index}", f"GPU statistics of CUDA device {index} failed: {error}"
            )


def device_name(nvml: Nvml, handle: object) -> str:
    name = nvml.nvmlDeviceGetName(handle)
    return name.decode() if isinstance(name, bytes) else name


def sample(nvml: Nvml, handle: object, samples: GpuSamples) -> None:
    """Add the device's utilisation and memory now to `samples`."""
    utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    samples.total = int(memory.total)
    samples.utilization.append(float(utilization.gpu))
    samples.memory.append(int(memory.used))


def snapshot(monitor: GpuMonitor, gpu_index: int | None) -> audio_pb2.DeviceStats | None:
    """One sample of CUDA device `gpu_index` now, for a service's `GetInfo`.

    Blocking (NVML may be initialised here): call it from a worker thread. None
    off CUDA (`gpu_index` None) and when NVML fails, which is logged once and
    never fails the call.
    """
    if gpu_index is None:
        return None
    samples = GpuSamples()
    try:
        nvml = monitor.nvml()
        handle = None if nvml is None else monitor.handle(nvml, gpu_index)
        if nvml is None or handle is None:
            return None
        samples.name = device_name(nvml, handle)
        sample(nvml, handle, samples)
    except Exception as error:
        monitor.warn_once(
            f"snapshot {gpu_index}", f"GPU statistics of CUDA device {gpu_index} failed: {error}"
        )
        return None
    return summarize(gpu_index, samples, 0.0)
