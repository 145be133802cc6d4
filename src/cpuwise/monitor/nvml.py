"""GPU sampling through NVML (nvidia-ml-py's `pynvml`): utilisation, memory, power, SM clock,
per-process memory, and SM activity / occupancy through GPM on GPUs that support it (Hopper+).

Every NVML call that fails leaves its field None instead of failing the run; when NVML cannot start
at all, the status says why and the doctor records no GPU samples. Pass `nvml=` (a module with the
pynvml API) to test without a GPU.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from cpuwise._schema import GpuSample, GpuStatus


def _import_nvml() -> tuple[ModuleType | None, str]:
    try:
        return importlib.import_module("pynvml"), ""
    except ImportError:
        return None, "nvidia-ml-py is not installed (pip install 'cpuwise[gpu]')"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_gpus(nvml: Any = None) -> dict[str, Any]:
    """GPU names, memory and driver through NVML, or why there are none (for `cpuwise info`)."""
    if nvml is None:
        nvml, reason = _import_nvml()
        if nvml is None:
            return {"available": False, "reason": reason, "devices": []}
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError subclasses: no driver, no library, no permission
        return {"available": False, "reason": f"NVML could not start: {exc}", "devices": []}
    try:
        devices = []
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(h)
            devices.append({"index": i, "name": _text(nvml.nvmlDeviceGetName(h)),
                            "memory_total_bytes": int(mem.total)})
        return {"available": bool(devices), "reason": "" if devices else "NVML found no GPU",
                "devices": devices, "driver": _text(nvml.nvmlSystemGetDriverVersion())}
    finally:
        nvml.nvmlShutdown()


class _Gpm:
    """GPM SM activity (SM_UTIL) and occupancy for one device: each value needs two samples."""

    def __init__(self, nvml: Any, handle: Any) -> None:
        self.nvml, self.handle = nvml, handle
        self.prev = nvml.nvmlGpmSampleAlloc()
        self.cur = nvml.nvmlGpmSampleAlloc()
        nvml.nvmlGpmSampleGet(handle, self.prev)

    def read(self) -> tuple[float | None, float | None]:
        n = self.nvml
        n.nvmlGpmSampleGet(self.handle, self.cur)
        mg = n.c_nvmlGpmMetricsGet_t()
        mg.version = n.NVML_GPM_METRICS_GET_VERSION
        mg.numMetrics = 2
        mg.sample1, mg.sample2 = self.prev, self.cur
        mg.metrics[0].metricId = n.NVML_GPM_METRIC_SM_UTIL
        mg.metrics[1].metricId = n.NVML_GPM_METRIC_SM_OCCUPANCY
        n.nvmlGpmMetricsGet(mg)
        self.prev, self.cur = self.cur, self.prev
        vals = [float(m.value) if int(m.nvmlReturn) == 0 else None for m in (mg.metrics[0], mg.metrics[1])]
        return vals[0], vals[1]

    def close(self) -> None:
        for s in (self.prev, self.cur):
            try:
                self.nvml.nvmlGpmSampleFree(s)
            except Exception:
                pass


class NvmlBackend:
    """Samples every GPU NVML sees. Check `status.available` before relying on samples."""

    def __init__(self, nvml: Any = None) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._gpm: dict[int, _Gpm] = {}
        if nvml is None:
            nvml, reason = _import_nvml()
            if nvml is None:
                self.status = GpuStatus(available=False, reason=reason)
                return
        try:
            nvml.nvmlInit()
        except Exception as exc:
            self.status = GpuStatus(available=False, reason=f"NVML could not start (no NVIDIA driver or "
                                    f"GPU visible): {exc}")
            return
        self._nvml = nvml
        names: list[str] = []
        try:
            for i in range(nvml.nvmlDeviceGetCount()):
                h = nvml.nvmlDeviceGetHandleByIndex(i)
                self._handles.append(h)
                names.append(_text(nvml.nvmlDeviceGetName(h)))
                self._start_gpm(i, h)
        except Exception as exc:
            self.close()
            self.status = GpuStatus(available=False, reason=f"NVML could not list GPUs: {exc}")
            return
        if not self._handles:
            self.close()
            self.status = GpuStatus(available=False, reason="NVML started but found no GPU")
            return
        metric = "GPM SM_UTIL (SM activity) + SM_OCCUPANCY" if self._gpm else "nvmlDeviceGetUtilizationRates"
        self.status = GpuStatus(available=True, devices=names, sm_metric=metric)

    def _start_gpm(self, index: int, handle: Any) -> None:
        n = self._nvml
        assert n is not None
        if not hasattr(n, "nvmlGpmQueryDeviceSupport"):
            return
        try:
            if not int(n.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice):
                return
            self._gpm[index] = _Gpm(n, handle)
        except Exception:  # older driver, MIG, or no permission: fall back to coarse utilisation
            return

    def sample(self, t: float, pids: list[int]) -> list[GpuSample]:
        n = self._nvml
        if n is None:
            return []
        out = []
        for i, h in enumerate(self._handles):
            s = GpuSample(t=t, index=i, util_percent=None, mem_used_bytes=None, mem_total_bytes=None,
                          power_w=None, sm_clock_mhz=None)
            try:
                s.util_percent = float(n.nvmlDeviceGetUtilizationRates(h).gpu)
            except Exception:
                pass
            try:
                mem = n.nvmlDeviceGetMemoryInfo(h)
                s.mem_used_bytes, s.mem_total_bytes = int(mem.used), int(mem.total)
            except Exception:
                pass
            try:
                s.power_w = n.nvmlDeviceGetPowerUsage(h) / 1000.0
            except Exception:
                pass
            try:
                s.sm_clock_mhz = float(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM))
            except Exception:
                pass
            try:
                for p in n.nvmlDeviceGetComputeRunningProcesses(h):
                    used = getattr(p, "usedGpuMemory", None)
                    if used is not None and int(used) < (1 << 62):  # NVML_VALUE_NOT_AVAILABLE is huge
                        s.process_mem_bytes[str(p.pid)] = int(used)
            except Exception:
                pass
            gpm = self._gpm.get(i)
            if gpm is not None:
                try:
                    s.sm_activity_percent, s.sm_occupancy_percent = gpm.read()
                except Exception as exc:  # e.g. the GPU was put into MIG mode meanwhile
                    gpm.close()
                    del self._gpm[i]
                    if not self._gpm:
                        self.status.sm_metric = f"nvmlDeviceGetUtilizationRates (GPM stopped: {exc})"
            out.append(s)
        return out

    def close(self) -> None:
        for g in self._gpm.values():
            g.close()
        self._gpm.clear()
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._nvml = None
