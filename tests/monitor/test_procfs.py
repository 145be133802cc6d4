"""Real samplers: the /proc and psutil tree samplers on live processes, /proc system sampling."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cpuwise.monitor import proctree
from cpuwise.monitor.procfs import ProcfsProcessBackend, ProcSystemBackend, process_backend
from cpuwise.monitor.psutil_tree import PsutilProcessBackend
from cpuwise.monitor.uss import UssBudget

BACKENDS = ["procfs", "psutil"]


def make(kind: str, pid: int) -> ProcfsProcessBackend | PsutilProcessBackend:
    """A sampler that re-walks the tree and reads USS on every tick (a generous USS budget)."""
    if kind == "procfs":
        return ProcfsProcessBackend(pid, refresh_every=1, uss=UssBudget(fraction=1.0, credit_s=10.0),
                                    private_warmup_s=0.0)
    return PsutilProcessBackend(pid, refresh_every=1, uss_every=1)

# The root spins and starts two children that block until killed; it prints their pids when they exist.
# The test ends one child itself, so nothing depends on how fast the machine runs.
SPAWN_CHILDREN = """
import subprocess, sys, time
kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) for _ in range(2)]
sys.stdout.write(" ".join(str(k.pid) for k in kids) + "\\n"); sys.stdout.flush()
t = time.time()
while time.time() - t < 60: sum(range(10000))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_tree_sampler_follows_children_and_survives_one_exiting(backend: str) -> None:
    root = subprocess.Popen([sys.executable, "-c", SPAWN_CHILDREN], stdout=subprocess.PIPE, text=True)
    kids: list[int] = []
    try:
        assert root.stdout is not None
        kids = [int(p) for p in root.stdout.readline().split()]
        assert len(kids) == 2
        b = make(backend, root.pid)
        cpu_before = psutil.Process(root.pid).cpu_times()
        t0 = time.monotonic()
        first = b.sample(t0, {})
        assert {s.pid for s in first} == {root.pid, *kids}
        assert {s.role for s in first if s.pid == root.pid} == {"main"}
        # A just-exec'd child may read RSS 0 in /proc/PID/stat (the kernel syncs its per-thread RSS
        # counters lazily): only the root, which has run, must show its memory.
        assert all(s.num_threads >= 1 and s.rss_bytes >= 0 for s in first)
        assert next(s for s in first if s.pid == root.pid).rss_bytes > 0
        assert any(s.uss_bytes for s in first)  # one process per tick gets a USS reading
        os.kill(kids[0], signal.SIGKILL)  # it stays a zombie: the root never reaps it
        time.sleep(0.3)
        t1 = time.monotonic()
        later = b.sample(t1, {})
        cpu_after = psutil.Process(root.pid).cpu_times()
        main = next(s for s in later if s.pid == root.pid)
        # The root spins: its CPU between the two ticks is what the kernel says it used, no more.
        used = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        assert 0.0 < main.cpu_percent * (t1 - t0) / 100.0 <= used + 0.05
        assert main.ctx_voluntary >= 0 and main.ctx_involuntary >= 0
        assert kids[1] in {s.pid for s in later}
        assert {s.ppid for s in later if s.pid != root.pid} == {root.pid}
    finally:
        for pid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        root.kill()
        root.wait()
    # The whole tree is gone now: sampling must not raise.
    assert all(s.pid != root.pid for s in b.sample(time.monotonic(), {}))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_root_that_does_not_exist_gives_no_samples(backend: str) -> None:
    b = make(backend, 1 << 22)  # no such pid
    assert b.sample(0.0, {}) == []


def test_both_samplers_agree_on_this_process() -> None:
    sum(range(200_000))
    fast = make("procfs", os.getpid()).sample(0.0, {})[0]
    slow = make("psutil", os.getpid()).sample(0.0, {})[0]
    assert (fast.pid, fast.ppid, fast.name, fast.role) == (slow.pid, slow.ppid, slow.name, "main")
    assert fast.num_threads == slow.num_threads and slow.uss_bytes
    assert fast.uss_bytes is None  # the /proc sampler spends its private-memory budget on data workers only
    assert abs(fast.rss_bytes - slow.rss_bytes) < 16 << 20
    assert fast.ctx_voluntary <= slow.ctx_voluntary and fast.read_bytes is not None
    assert isinstance(process_backend(os.getpid()), ProcfsProcessBackend)


def write_proc(root: Path, stat: str, meminfo: str) -> None:
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc/stat").write_text(stat)
    (root / "proc/meminfo").write_text(meminfo)


MEMINFO = "MemTotal: 8000 kB\nMemFree: 1000 kB\nMemAvailable: 3000 kB\nSwapTotal: 1000 kB\nSwapFree: 400 kB\n"


def test_system_sampler_per_core_busy_iowait_and_run_queue(tmp_path: Path) -> None:
    write_proc(tmp_path, "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\n"
               "cpu1 50 0 50 400 0 0 0 0 0 0\nprocs_running 3\n", MEMINFO)
    b = ProcSystemBackend(tmp_path)
    assert b.sample(0.0) is None  # rates need two readings
    # core 0: +100 busy of +100 -> 100 %; core 1: +25 busy, +25 iowait, +50 idle -> 25 % busy.
    write_proc(tmp_path, "cpu  225 0 100 850 25 0 0 0 0 0\ncpu0 150 0 50 400 0 0 0 0 0 0\n"
               "cpu1 75 0 50 450 25 0 0 0 0 0\nprocs_running 7\n", MEMINFO)
    s = b.sample(0.1)
    assert s is not None
    assert s.cpu_percent_per_core == [100.0, 25.0]
    assert s.iowait_percent == pytest.approx(12.5)
    assert s.procs_running == 7
    assert (s.mem_total_bytes, s.mem_used_bytes, s.swap_used_bytes) == (8000 * 1024, 5000 * 1024, 600 * 1024)


def test_system_sampler_on_this_machine() -> None:
    b = ProcSystemBackend()
    b.sample(0.0)
    time.sleep(0.05)
    s = b.sample(0.05)
    assert s is not None and len(s.cpu_percent_per_core) >= 1 and s.mem_total_bytes > 0
    assert all(0.0 <= c <= 100.0 for c in s.cpu_percent_per_core)


def test_without_proc_the_system_sampler_falls_back_to_psutil(tmp_path: Path) -> None:
    b = ProcSystemBackend(tmp_path)  # an empty root: no /proc/stat
    assert b.sample(0.0) is None
    time.sleep(0.05)
    s = b.sample(0.05)
    assert s is not None and s.cpu_percent_per_core and s.procs_running is None and s.mem_total_bytes > 0



class FakeProc:
    """A /proc with the files the sampler reads, written tick by tick (CPU in seconds)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(exist_ok=True)

    def uptime(self, seconds: float) -> None:
        (self.root / "uptime").write_text(f"{seconds:.2f} 0.00\n")

    def process(self, pid: int, ppid: int, *, cpu: float, children_cpu: float = 0.0, started: float = 0.0,
                kids: tuple[int, ...] = ()) -> None:
        tick = proctree.CLK_TCK
        fields = ["S", str(ppid)] + ["0"] * 38
        fields[11], fields[13] = str(round(cpu * tick)), str(round(children_cpu * tick))
        fields[17], fields[19], fields[21] = "1", str(round(started * tick)), "100"
        base = self.root / str(pid)
        (base / "task" / str(pid)).mkdir(parents=True, exist_ok=True)
        (base / "stat").write_text(f"{pid} (python) " + " ".join(fields) + "\n")
        (base / "status").write_text("voluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t0\n")
        (base / "io").write_text("read_bytes: 0\n")
        (base / "cmdline").write_bytes(b"python\0train.py\0")
        (base / "task" / str(pid) / "children").write_text(" ".join(map(str, kids)))

    def gone(self, pid: int) -> None:
        shutil.rmtree(self.root / str(pid))


def test_a_reaped_childs_cpu_not_yet_counted_is_its_parents(tmp_path: Path) -> None:
    """A child seen at 0.5 s of CPU exits with 0.55 s, and another is born and dies between two ticks with
    0.05 s: its parent's cutime grows by 0.6 s when it reaps them, 0.1 s of which the job's CPU lacks."""
    proc = FakeProc(tmp_path / "proc")
    proc.uptime(100.0)
    proc.process(1000, 1, cpu=1.0, started=10.0, kids=(1001,))
    proc.process(1001, 1000, cpu=0.5, started=50.0)
    b = ProcfsProcessBackend(1000, refresh_every=1, proc=str(proc.root))
    b.sample(0.0, {})
    proc.gone(1001)
    proc.process(1000, 1, cpu=1.0, children_cpu=0.6, started=10.0)
    proc.uptime(101.0)
    (main,) = b.sample(1.0, {})
    assert main.cpu_percent == pytest.approx(10.0)


def test_a_process_younger_than_the_tick_counts_its_cpu_over_the_tick(tmp_path: Path) -> None:
    """A worker born 0.25 s before a 1 s tick with 0.2 s of CPU used 20 % of a core over that tick (its
    mean since it started, 80 %, would count 0.8 s)."""
    proc = FakeProc(tmp_path / "proc")
    proc.uptime(100.0)
    proc.process(1000, 1, cpu=1.0, started=10.0)
    b = ProcfsProcessBackend(1000, refresh_every=1, proc=str(proc.root))
    b.sample(0.0, {})
    proc.uptime(101.0)
    proc.process(1000, 1, cpu=1.0, started=10.0, kids=(1002,))
    proc.process(1002, 1000, cpu=0.2, started=100.75)
    worker = next(s for s in b.sample(1.0, {}) if s.pid == 1002)
    assert worker.cpu_percent == pytest.approx(20.0)


def test_the_roots_new_children_are_sampled_between_full_walks(tmp_path: Path) -> None:
    """A DataLoader worker the root starts between two walks of the tree is sampled from the next tick."""
    proc = FakeProc(tmp_path / "proc")
    proc.uptime(100.0)
    proc.process(1000, 1, cpu=1.0, started=10.0)
    b = ProcfsProcessBackend(1000, refresh_every=5, proc=str(proc.root))
    assert [s.pid for s in b.sample(0.0, {})] == [1000]  # a full walk
    proc.process(1000, 1, cpu=1.0, started=10.0, kids=(1003,))
    proc.process(1003, 1000, cpu=0.05, started=100.05)
    proc.uptime(100.1)
    assert sorted(s.pid for s in b.sample(0.1, {})) == [1000, 1003]  # not a full walk
