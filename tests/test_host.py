"""Host facts from recorded /proc and /sys trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpuwise import host

V1 = "sys/fs/cgroup/cpu,cpuacct/k8s"


def _v1(quota: str) -> dict[str, str]:
    return {f"{V1}/cpu.cfs_quota_us": quota, f"{V1}/cpu.cfs_period_us": "100000"}


def _tree(tmp_path: Path, cgroup: str, files: dict[str, str], flags: str = "fpu avx2 fma") -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    (tmp_path / "proc/cpuinfo").write_text(f"model name\t: Test CPU\nflags\t\t: {flags}\n")
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("cgroup", "files", "cores", "source"),
    [
        ("0::/job\n", {"sys/fs/cgroup/job/cpu.max": "150000 100000"}, 1.5, "cgroup v2 cpu.max"),
        ("0::/job\n", {"sys/fs/cgroup/job/cpu.max": "max 100000"}, None, "none"),
        ("4:cpu,cpuacct:/k8s\n", _v1("50000"), 0.5, "cgroup v1 cfs"),
        ("4:cpu,cpuacct:/k8s\n", _v1("-1"), None, "none"),
        ("0::/\n", {}, None, "none"),
    ],
)
def test_cpu_quota(
    tmp_path: Path, cgroup: str, files: dict[str, str], cores: float | None, source: str
) -> None:
    q = host.cpu_quota(_tree(tmp_path, cgroup, files))
    assert q.cores == cores
    assert q.source == source


def test_usable_cores_rounds_quota_up_and_never_exceeds_affinity(tmp_path: Path) -> None:
    root = _tree(tmp_path, "0::/job\n", {"sys/fs/cgroup/job/cpu.max": "150000 100000"})
    assert host.usable_cores(root) == min(2, host.affinity_cores())
    root2 = _tree(tmp_path / "b", "0::/job\n", {"sys/fs/cgroup/job/cpu.max": "1000000 100000"})
    assert host.usable_cores(root2) == host.affinity_cores()


def test_cpu_flags_and_vnni(tmp_path: Path) -> None:
    root = _tree(tmp_path, "0::/\n", {}, flags="avx2 fma avx512f avx512_vnni")
    flags = host.cpu_flags(root)
    assert flags["avx2"] and flags["avx512_vnni"] and not flags["amx_tile"]
    assert host.has_vnni(flags)
    assert not host.has_vnni({"avx2": True})
    assert host.cpu_model(root) == "Test CPU"


def test_memory_limit(tmp_path: Path) -> None:
    root = _tree(tmp_path, "0::/job\n", {"sys/fs/cgroup/job/memory.max": str(4 << 30)})
    assert host.memory_limit(root) == 4 << 30
    root2 = _tree(tmp_path / "b", "0::/job\n", {"sys/fs/cgroup/job/memory.max": "max"})
    assert host.memory_limit(root2) is None


def test_cgroup_v1_container_limits_at_the_controller_roots(tmp_path: Path) -> None:
    # Inside a v1 container the controller's mount root is the container's own cgroup.
    root = _tree(tmp_path, "4:cpu,cpuacct:/docker/abc\n12:memory:/docker/abc\n", {
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "150000",
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": str(2 << 30),
    })
    assert host.cpu_quota(root) == host.CpuQuota(1.5, "cgroup v1 cfs")
    assert host.memory_limit(root) == 2 << 30


def test_cgroup_v1_memory_limit_in_own_cgroup_and_tightest_ancestor_wins(tmp_path: Path) -> None:
    root = _tree(tmp_path, "12:memory:/docker/abc\n0::/kube/pod/c1\n", {
        "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": str(3 << 30),
        "sys/fs/cgroup/kube/pod/c1/cpu.max": "max 100000",
        "sys/fs/cgroup/kube/pod/cpu.max": "50000 100000",
    })
    assert host.memory_limit(root) == 3 << 30
    assert host.cpu_quota(root).cores == 0.5
