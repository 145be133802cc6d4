"""Facts about the machine that decide how much parallelism a job can really use.

`usable_cores()` honours CPU affinity *and* the cgroup CPU quota (containers, Kubernetes limits), not
just `os.cpu_count()`. `cpu_flags()` reports the instruction-set features that decide which INT8
kernels are fast and accurate (VNNI avoids the u8s8 saturation of AVX2-only CPUs).

All functions read plain files and are cheap; pass `root` to read a recorded /proc + /sys tree in tests.
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Flags from /proc/cpuinfo that matter for inference kernels, with a short meaning for reports.
INFERENCE_FLAGS: dict[str, str] = {
    "avx2": "AVX2 (256-bit SIMD)",
    "fma": "fused multiply-add",
    "avx512f": "AVX-512 foundation",
    "avx512bw": "AVX-512 byte/word",
    "avx512_vnni": "AVX-512 VNNI (fast, exact INT8 dot products)",
    "avx_vnni": "AVX-VNNI (256-bit INT8 dot products)",
    "avx512_bf16": "AVX-512 BF16",
    "amx_tile": "AMX tiles",
    "amx_int8": "AMX INT8",
    "amx_bf16": "AMX BF16",
}


@dataclass(frozen=True)
class CpuQuota:
    """The CPU limit that applies to this process, in cores (None = unlimited)."""

    cores: float | None
    source: str  # "cgroup v2 cpu.max", "cgroup v1 cfs", or "none"


@dataclass(frozen=True)
class HostFacts:
    """A snapshot of the machine for reports and for sizing worker pools."""

    logical_cores: int
    affinity_cores: int
    quota: CpuQuota
    usable_cores: int
    memory_total_bytes: int
    memory_limit_bytes: int | None
    cpu_model: str
    cpu_flags: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


# cgroup v1 mounts each controller at its own root; names as mounted by systemd / Docker / Kubernetes.
_V1_MOUNTS = {"cpu": ("cpu,cpuacct", "cpu", "cpuacct,cpu"), "memory": ("memory",)}


def _cgroup_dirs(root: Path, controller: str) -> list[Path]:
    """Directories that may hold this process's `controller` limits, most specific first: its own
    cgroup and every ancestor (a limit set on a parent applies too), for v2 and v1, then the
    controller's mount root (inside a v1 container that root *is* the container's cgroup)."""
    out: list[Path] = []
    text = _read(root / "proc/self/cgroup") or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":
            bases = [root / "sys/fs/cgroup"]
        elif controller in controllers.split(","):
            bases = [root / "sys/fs/cgroup" / name for name in _V1_MOUNTS[controller]]
        else:
            continue
        rel_parts = [p for p in rel.split("/") if p]
        for depth in range(len(rel_parts), 0, -1):
            out.extend(base.joinpath(*rel_parts[:depth]) for base in bases)
    out.extend(root / "sys/fs/cgroup" / name for name in _V1_MOUNTS[controller])
    out.append(root / "sys/fs/cgroup")
    return out


def _quota_in(d: Path) -> CpuQuota | None:
    """The quota set in one cgroup directory, CpuQuota(None) for an explicit "unlimited", None if unset."""
    v2 = _read(d / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        if quota == "max":
            return CpuQuota(None, "none")
        try:
            return CpuQuota(int(quota) / int(period or "100000"), "cgroup v2 cpu.max")
        except ValueError:
            return None
    q, p = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
    if q is None or p is None:
        return None
    try:
        qi, pi = int(q), int(p)
    except ValueError:
        return None
    return CpuQuota(None, "none") if qi <= 0 or pi <= 0 else CpuQuota(qi / pi, "cgroup v1 cfs")


def cpu_quota(root: Path = Path("/")) -> CpuQuota:
    """The tightest cgroup CPU quota on this process's cgroup path, in cores (None: unlimited)."""
    best = CpuQuota(None, "none")
    for d in _cgroup_dirs(root, "cpu"):
        q = _quota_in(d)
        if q is not None and q.cores is not None and (best.cores is None or q.cores < best.cores):
            best = q
    return best


def affinity_cores() -> int:
    """Cores this process may run on (sched_getaffinity), falling back to os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def usable_cores(root: Path = Path("/")) -> int:
    """Cores a job can really use: min(affinity, ceil(cgroup quota)), at least 1."""
    n = affinity_cores()
    q = cpu_quota(root).cores
    if q is not None:
        n = min(n, max(1, math.ceil(q - 1e-9)))
    return max(1, n)


def memory_total() -> int:
    """Physical memory in bytes."""
    import psutil  # lazy: host facts are read by `import cpuwise.data`; /proc covers Linux without it

    return int(psutil.virtual_memory().total)


def memory_limit(root: Path = Path("/")) -> int | None:
    """The tightest cgroup memory limit on this process's cgroup path in bytes, or None when unlimited."""
    best: int | None = None
    for d in _cgroup_dirs(root, "memory"):
        for name in ("memory.max", "memory.limit_in_bytes"):
            text = _read(d / name)
            if text is None or text == "max":
                continue
            try:
                value = int(text)
            except ValueError:
                continue
            if value < (1 << 60) and (best is None or value < best):  # v1 "unlimited" is ~2**63
                best = value
    return best


def usable_memory(root: Path = Path("/")) -> int:
    """Memory a job can use: min(physical RAM, cgroup limit)."""
    total = memory_total()
    limit = memory_limit(root)
    return min(total, limit) if limit else total


def cpu_flags(root: Path = Path("/")) -> dict[str, bool]:
    """Which of INFERENCE_FLAGS this CPU has (all False where /proc/cpuinfo is unreadable)."""
    text = _read(root / "proc/cpuinfo") or ""
    present: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            present = set(line.partition(":")[2].split())
            break
    return {flag: flag in present for flag in INFERENCE_FLAGS}


def has_vnni(flags: dict[str, bool] | None = None) -> bool:
    """True if the CPU has INT8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX)."""
    flags = cpu_flags() if flags is None else flags
    return any(flags.get(f, False) for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def cpu_model(root: Path = Path("/")) -> str:
    text = _read(root / "proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def host_facts(root: Path = Path("/")) -> HostFacts:
    """Everything above in one snapshot."""
    return HostFacts(
        logical_cores=os.cpu_count() or 1,
        affinity_cores=affinity_cores(),
        quota=cpu_quota(root),
        usable_cores=usable_cores(root),
        memory_total_bytes=memory_total(),
        memory_limit_bytes=memory_limit(root),
        cpu_model=cpu_model(root),
        cpu_flags=cpu_flags(root),
    )
