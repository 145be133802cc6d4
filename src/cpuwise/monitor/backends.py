"""The small sampler interfaces the recorder drives; real (procfs, NVML) and fake ones implement them."""

from __future__ import annotations

from typing import Protocol

from cpuwise._schema import GpuSample, GpuStatus, ProcessSample, SystemSample


class ProcessBackend(Protocol):
    """Samples the job's process tree."""

    def sample(self, t: float, roles: dict[int, str]) -> list[ProcessSample]:
        """One sample per live process of the tree. `roles` are hints from the job (pid -> role).

        A process that exits while it is being read is left out, never an error.
        """
        ...

    def pids(self) -> list[int]:
        """The pids seen in the latest sample."""
        ...


class SystemBackend(Protocol):
    """Samples the whole machine."""

    def sample(self, t: float) -> SystemSample | None:
        """None on the first call when rates need two readings."""
        ...


class GpuBackend(Protocol):
    """Samples the GPUs; `status` says whether it can and, if not, why."""

    status: GpuStatus

    def sample(self, t: float, pids: list[int]) -> list[GpuSample]: ...

    def close(self) -> None: ...


class NoGpu:
    """The GPU backend when there is none: records nothing, says why."""

    def __init__(self, reason: str) -> None:
        self.status = GpuStatus(available=False, reason=reason)

    def sample(self, t: float, pids: list[int]) -> list[GpuSample]:
        return []

    def close(self) -> None:
        pass
