"""One NVML sample of a device, for the services' `GetInfo` (`whospoke.common.gpu.snapshot`)."""

from __future__ import annotations

import logging

import pytest

from tests.unit.test_gpu import GIB, FakeNvml, monitor
from whospoke.common.gpu import snapshot


def test_a_snapshot_is_one_sample_of_the_device_now() -> None:
    nvml = FakeNvml(utilization=(42,), used=(3 * GIB,))
    stats = snapshot(monitor(nvml, visible="2,3"), 1)
    assert stats is not None and nvml.lookups == [("index", 3)]
    assert (stats.gpu_index, stats.gpu_name, stats.samples) == (1, "NVIDIA Fake 80GB", 1)
    assert stats.utilization_percent_avg == stats.utilization_percent_max == 42.0
    assert stats.memory_used_bytes_avg == stats.memory_used_bytes_max == 3 * GIB
    assert stats.memory_total_bytes == 8 * GIB and stats.sample_interval_seconds == 0.0
    assert nvml.utilizations == [42] and nvml.memory == [3 * GIB]  # one sample, no more


def test_off_cuda_nvml_is_not_touched() -> None:
    nvml = FakeNvml()
    assert snapshot(monitor(nvml), None) is None
    assert nvml.inits == 0


@pytest.mark.parametrize(
    "nvml",
    [FakeNvml(init_error=RuntimeError("Driver Not Loaded")), FakeNvml(fail_at=0)],
    ids=["nvml-missing", "sample-fails"],
)
def test_a_failure_gives_none_logged_once(nvml: FakeNvml, caplog: pytest.LogCaptureFixture) -> None:
    gpus = monitor(nvml)
    with caplog.at_level(logging.WARNING, "whospoke.common.gpu"):
        assert snapshot(gpus, 0) is None
        assert snapshot(gpus, 0) is None  # the same failure again: not logged again
    assert len(caplog.records) == 1


def test_a_device_missing_from_cuda_visible_devices_gives_none() -> None:
    nvml = FakeNvml()
    assert snapshot(monitor(nvml, visible="0"), 1) is None
    assert nvml.lookups == []
