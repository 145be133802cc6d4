"""NVML sampling against a fake pynvml: GPM where supported, coarse utilisation otherwise, reasons."""

from __future__ import annotations

import pytest

from cpuwise.monitor.fake import FakePynvml
from cpuwise.monitor.nvml import NvmlBackend, probe_gpus

H100 = {"name": "NVIDIA H100 80GB HBM3", "util": 97, "mem_used": 20 << 30, "mem_total": 80 << 30,
        "power_mw": 350_000, "sm_clock": 1980, "procs": {4242: 3 << 30}, "gpm": [(41.5, 22.0), (43.0, 25.0)]}
T4 = {"name": "Tesla T4", "util": 30, "mem_used": 1 << 30, "mem_total": 16 << 30, "sm_clock": 1590,
      "gpm": None}


def test_gpm_device_reports_sm_activity_and_occupancy_and_says_which_metric() -> None:
    nv = FakePynvml([H100])
    b = NvmlBackend(nvml=nv)
    assert b.status.available and b.status.devices == ["NVIDIA H100 80GB HBM3"]
    assert b.status.sm_metric is not None and "GPM SM_UTIL" in b.status.sm_metric
    s1, = b.sample(0.1, [4242])
    s2, = b.sample(0.2, [4242])
    assert (s1.sm_activity_percent, s1.sm_occupancy_percent) == (41.5, 22.0)
    assert (s2.sm_activity_percent, s2.sm_occupancy_percent) == (43.0, 25.0)
    assert s1.util_percent == 97 and s1.power_w == pytest.approx(350.0) and s1.sm_clock_mhz == 1980
    assert s1.mem_used_bytes == 20 << 30 and s1.process_mem_bytes == {"4242": 3 << 30}
    b.close()
    assert nv.shutdowns == 1 and nv.freed == 2


def test_device_without_gpm_falls_back_to_utilisation_and_missing_power_is_none() -> None:
    b = NvmlBackend(nvml=FakePynvml([T4]))
    assert b.status.sm_metric == "nvmlDeviceGetUtilizationRates"
    s, = b.sample(0.1, [])
    assert s.util_percent == 30 and s.sm_activity_percent is None and s.power_w is None


def test_no_driver_gives_a_reason_and_no_samples() -> None:
    b = NvmlBackend(nvml=FakePynvml([], init_error="NVML Shared Library Not Found"))
    assert not b.status.available and "NVML Shared Library Not Found" in b.status.reason
    assert b.sample(0.1, []) == []
    b.close()


def test_no_gpu_found_is_unavailable_with_a_reason() -> None:
    b = NvmlBackend(nvml=FakePynvml([]))
    assert not b.status.available and "no GPU" in b.status.reason


def test_probe_gpus_lists_devices_or_says_why() -> None:
    info = probe_gpus(FakePynvml([H100, T4]))
    assert info["available"] and [d["name"] for d in info["devices"]] == ["NVIDIA H100 80GB HBM3", "Tesla T4"]
    assert info["devices"][1]["memory_total_bytes"] == 16 << 30
    bad = probe_gpus(FakePynvml([], init_error="Driver Not Loaded"))
    assert not bad["available"] and "Driver Not Loaded" in bad["reason"]


@pytest.mark.gpu
def test_real_nvml_samples_the_gpu() -> None:
    b = NvmlBackend()
    try:
        assert b.status.available, b.status.reason
        b.sample(0.0, [])
        import time

        time.sleep(0.2)
        samples = b.sample(0.2, [])
        assert samples and samples[0].mem_total_bytes and samples[0].util_percent is not None
        if b.status.sm_metric and "GPM" in b.status.sm_metric:
            assert samples[0].sm_activity_percent is not None
    finally:
        b.close()


def test_gpm_failing_midway_falls_back_and_says_so() -> None:
    nv = FakePynvml([dict(H100, gpm=[(10.0, 5.0)])])
    b = NvmlBackend(nvml=nv)

    def broken(mg: object) -> None:
        raise RuntimeError("GPM not supported in MIG mode")

    nv.nvmlGpmMetricsGet = broken  # type: ignore[method-assign]
    s, = b.sample(0.1, [])
    assert s.sm_activity_percent is None and s.util_percent == 97
    assert b.status.sm_metric is not None and "GPM stopped" in b.status.sm_metric
