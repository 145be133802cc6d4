"""Scripted fake backends (process tree, system, GPU, and a fake `pynvml` module) for tests.

Each fake replays a script: a list with one entry per tick. Process scripts may make a process
vanish or raise mid-read, as real ones do between two samples.

    procs = FakeProcessBackend([[ProcessSample(...), ...], ...])
    rec = Recorder(procs, FakeSystemBackend([...]), FakeGpuBackend([...]), interval=0.1)
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

from cpuwise._schema import GpuSample, GpuStatus, ProcessSample, SystemSample


class VanishedError(Exception):
    """Raised by a scripted tick to mimic a process that exited while it was being read."""


class FakeProcessBackend:
    """Replays per-tick lists of ProcessSample (t is overwritten with the tick's time)."""

    def __init__(self, script: list[list[ProcessSample] | Exception]) -> None:
        self.script = script
        self.calls = 0
        self._pids: list[int] = []

    def pids(self) -> list[int]:
        return list(self._pids)

    def sample(self, t: float, roles: dict[int, str]) -> list[ProcessSample]:
        step = self.script[min(self.calls, len(self.script) - 1)] if self.script else []
        self.calls += 1
        if isinstance(step, Exception):
            raise step
        out = [dataclasses.replace(s, t=t, role=roles.get(s.pid, s.role)) for s in step]
        self._pids = [s.pid for s in out]
        return out


class FakeSystemBackend:
    """Replays SystemSamples (None for 'not ready yet')."""

    def __init__(self, script: list[SystemSample | None]) -> None:
        self.script, self.calls = script, 0

    def sample(self, t: float) -> SystemSample | None:
        s = self.script[min(self.calls, len(self.script) - 1)] if self.script else None
        self.calls += 1
        return None if s is None else dataclasses.replace(s, t=t)


class FakeGpuBackend:
    """Replays per-tick lists of GpuSample; `status` says available or not (with a reason)."""

    def __init__(self, script: list[list[GpuSample]] | None = None, *,
                 status: GpuStatus | None = None) -> None:
        self.script = script or []
        on = bool(self.script)
        self.status = status or GpuStatus(available=on, devices=["Fake GPU"] if on else [],
                                          reason="" if on else "fake: no GPU",
                                          sm_metric="fake" if on else None)
        self.calls, self.closed = 0, False

    def sample(self, t: float, pids: list[int]) -> list[GpuSample]:
        if not self.script:
            return []
        step = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return [dataclasses.replace(s, t=t) for s in step]

    def close(self) -> None:
        self.closed = True


def proc(pid: int, *, cpu: float = 0.0, role: str = "main", ppid: int = 1, threads: int = 1,
         rss: int = 100 << 20, name: str = "python", invol: int = 0) -> ProcessSample:
    """A ProcessSample with defaults, for scripts."""
    return ProcessSample(t=0.0, pid=pid, ppid=ppid, name=name, role=role, cpu_percent=cpu,
                         num_threads=threads, ctx_voluntary=0, ctx_involuntary=invol, rss_bytes=rss,
                         uss_bytes=None, read_bytes=0, status="running")


def system(per_core: list[float], *, iowait: float = 0.0, running: int = 1) -> SystemSample:
    return SystemSample(t=0.0, cpu_percent_per_core=per_core, iowait_percent=iowait, load1=0.0,
                        procs_running=running, mem_used_bytes=1 << 30, mem_total_bytes=8 << 30,
                        swap_used_bytes=0)


class FakeNvmlError(Exception):
    """What the fake pynvml raises (like pynvml.NVMLError)."""


class FakePynvml:
    """Enough of the `pynvml` module API for NvmlBackend and probe_gpus, scripted per device.

    Args:
        devices: one dict per GPU: name, util, mem_used, mem_total, power_mw, sm_clock, procs
            ({pid: bytes}), gpm (None: unsupported, else a list of (sm_util, sm_occupancy) per read).
        init_error: make nvmlInit raise this message (no driver).
    """

    NVML_CLOCK_SM = 1
    NVML_GPM_METRICS_GET_VERSION = 1
    NVML_GPM_METRIC_SM_UTIL = 2
    NVML_GPM_METRIC_SM_OCCUPANCY = 3

    def __init__(self, devices: list[dict[str, Any]], init_error: str | None = None) -> None:
        self.devices, self.init_error = devices, init_error
        self.inits = self.shutdowns = 0
        self.gpm_reads: dict[int, int] = {}
        self.freed = 0

    def nvmlInit(self) -> None:
        if self.init_error:
            raise FakeNvmlError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "999.0"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return str(self.devices[h]["name"]).encode()

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=self.devices[h]["util"], memory=0)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        d = self.devices[h]
        return SimpleNamespace(used=d["mem_used"], total=d["mem_total"], free=d["mem_total"] - d["mem_used"])

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        if "power_mw" not in self.devices[h]:
            raise FakeNvmlError("Not Supported")
        return int(self.devices[h]["power_mw"])

    def nvmlDeviceGetClockInfo(self, h: int, kind: int) -> int:
        assert kind == self.NVML_CLOCK_SM
        return int(self.devices[h]["sm_clock"])

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        procs = self.devices[h].get("procs", {})
        return [SimpleNamespace(pid=pid, usedGpuMemory=b) for pid, b in procs.items()]

    # GPM
    def nvmlGpmQueryDeviceSupport(self, h: int) -> Any:
        return SimpleNamespace(isSupportedDevice=int(self.devices[h].get("gpm") is not None))

    def nvmlGpmSampleAlloc(self) -> Any:
        return SimpleNamespace(device=None)

    def nvmlGpmSampleFree(self, s: Any) -> None:
        self.freed += 1

    def nvmlGpmSampleGet(self, h: int, s: Any) -> Any:
        s.device = h
        return s

    def c_nvmlGpmMetricsGet_t(self) -> Any:
        return SimpleNamespace(version=0, numMetrics=0, sample1=None, sample2=None,
                               metrics=[SimpleNamespace(metricId=0, nvmlReturn=0, value=0.0)
                                        for _ in range(4)])

    def nvmlGpmMetricsGet(self, mg: Any) -> Any:
        assert mg.version == self.NVML_GPM_METRICS_GET_VERSION and mg.sample1 is not mg.sample2
        h = mg.sample2.device
        n = self.gpm_reads.get(h, 0)
        self.gpm_reads[h] = n + 1
        script = self.devices[h]["gpm"]
        util, occ = script[min(n, len(script) - 1)]
        values = {self.NVML_GPM_METRIC_SM_UTIL: util, self.NVML_GPM_METRIC_SM_OCCUPANCY: occ}
        for m in mg.metrics[: mg.numMetrics]:
            m.value = values[m.metricId]
        return mg
