"""Real samplers: the job's process tree (plain /proc reads; psutil_tree.py elsewhere), the machine
through /proc.

Cheap by design (the doctor's budget: 1 % of one core per 10 sampled processes, see recorder.py): one
process is one small file read per tick (/proc/PID/stat); its cumulative counters (status: context
switches, io: bytes read) and the tree are re-read only every `refresh_every` ticks (rates need only
their end points); private memory (/proc/PID/smaps_rollup, which costs far more) is read for at most
one process per tick, within what the regular reads leave of the budget (`uss.UssBudget`).
`process_backend(pid)` picks the fastest sampler that works here.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from cpuwise._schema import ProcessSample, SystemSample
from cpuwise.monitor import proctree
from cpuwise.monitor.backends import ProcessBackend
from cpuwise.monitor.jobtree import JobTree
from cpuwise.monitor.psutil_tree import PsutilProcessBackend
from cpuwise.monitor.roles import is_mp_helper, role_of
from cpuwise.monitor.uss import UssBudget

# A worker's private memory grows while it imports and makes its first batches; growth after that is
# what copy-on-read looks like. Its first reading waits this long (cpuwise choice: a few batches).
PRIVATE_WARMUP_S = 2.0


def process_backend(root_pid: int, tree: JobTree | None = None) -> ProcessBackend:
    """The /proc sampler where the kernel offers what it needs, else the psutil one.

    Args:
        tree: how to find the job's processes (with the orphans the doctor adopted); default: the
            tree under `root_pid`.
    """
    if proctree.proc_available():
        return ProcfsProcessBackend(root_pid, tree=tree)
    return PsutilProcessBackend(root_pid)


class ProcfsProcessBackend:
    """Linux: samples the tree rooted at `root_pid` with plain reads of /proc/PID/{stat,status,io}."""

    def __init__(self, root_pid: int, *, refresh_every: int = 5, uss: UssBudget | None = None,
                 proc: str = "/proc", tree: JobTree | None = None,
                 private_warmup_s: float = PRIVATE_WARMUP_S) -> None:
        self.root_pid, self.proc = root_pid, proc
        self.tree = tree if tree is not None else JobTree(root_pid, proc=proc)
        self.refresh_every = max(1, refresh_every)
        self.uss = uss or UssBudget()
        self._auto_budget = uss is None  # a budget given by the caller is kept as it is
        self._pids: list[int] = [root_pid]
        # pid -> (t, its CPU seconds, its reaped children's CPU seconds, its parent) at the last tick
        self._prev_cpu: dict[int, tuple[float, float, float, int]] = {}
        self._last_t: float | None = None  # the previous tick
        self._tick = 0
        self._root_name: str | None = None
        self._cmdlines: dict[int, list[str]] = {}
        self._counters: dict[int, tuple[int, int, int | None]] = {}  # pid -> last (ctx vol, invol, read)
        self._first_seen: dict[int, float] = {}
        self.private_warmup_s = private_warmup_s

    def _cmdline(self, pid: int) -> list[str]:
        """The command line of `pid`, read once per pid (what it was started as: multiprocessing's helpers
        and Ray's daemons are told apart by it; a retitled Ray worker shows in its name). A process in
        the middle of its exec reads as empty: that is read again on the next tick, not kept."""
        known = self._cmdlines.get(pid)
        if known is None:
            try:
                with open(f"{self.proc}/{pid}/cmdline", "rb") as f:
                    raw = f.read()
            except OSError:
                raw = b""
            known = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
            if known:
                self._cmdlines[pid] = known
        return known

    def _main_thread_children(self, pid: int) -> list[int]:
        try:
            return [int(k) for k in proctree.read_file(f"{self.proc}/{pid}/task/{pid}/children").split()]
        except (OSError, ValueError):
            return []

    def pids(self) -> list[int]:
        return list(self._pids)

    def private_budget(self, fraction: float) -> None:
        """Let private-memory reads use `fraction` of one core from now on (the recorder gives them what
        its regular ticks leave of its budget); a budget the caller gave is kept."""
        if self._auto_budget:
            self.uss.fraction = fraction

    @property
    def private_cpu_s(self) -> float:
        """CPU spent on private-memory reads so far."""
        return self.uss.cpu_s

    def sample(self, t: float, roles: dict[int, str]) -> list[ProcessSample]:
        full = self._tick % self.refresh_every == 0
        if full:
            self._pids = self.tree.pids() or [self.root_pid]
        else:
            # between full walks, the root's main thread's new children (DataLoader workers, ranks) are
            # picked up at once, one read: a worker started for each epoch is the job's from its start
            self._pids += [k for k in self._main_thread_children(self.root_pid) if k not in self._pids]
        self._tick += 1
        raws: list[proctree.RawProc] = []
        for pid in self._pids:
            raw = proctree.read_process(pid, self.proc, counters=full or pid not in self._counters)
            if raw is None:
                self._counters.pop(pid, None)
                self._first_seen.pop(pid, None)
                self._cmdlines.pop(pid, None)
                self.uss.forget(pid)
                continue
            if full or pid not in self._counters:
                self._counters[pid] = (raw.ctx_voluntary, raw.ctx_involuntary, raw.read_bytes)
            else:
                raw.ctx_voluntary, raw.ctx_involuntary, raw.read_bytes = self._counters[pid]
            raws.append(raw)
        for raw in raws:
            if raw.pid == self.root_pid:
                self._root_name = raw.name
        role = {}
        for r in raws:
            cmd = self._cmdline(r.pid)
            role[r.pid] = role_of(r.pid, r.ppid, r.name, roles, self.root_pid, self._root_name,
                                  helper=is_mp_helper(" ".join(cmd)), cmdline=cmd)
        faults = {r.pid: r.minflt for r in raws if r.state != "zombie"}
        # Private memory matters where copy-on-read happens, the data workers (the rules read no other
        # process's); so the budget goes to them alone, once they are past their start-up (imports, first
        # batches: a step, not growth), and is full by then.
        for pid in faults:
            self._first_seen.setdefault(pid, t)
        workers = {pid: n for pid, n in faults.items()
                   if role[pid] == "worker" and t - self._first_seen[pid] >= self.private_warmup_s}
        uss_pid = self.uss.pick(list(workers), workers)
        # A child that exited between two ticks is reaped by its parent, whose cutime/cstime then grows by
        # the child's whole CPU; what of it was not yet counted while the child was sampled is the parent's
        # job CPU this tick (short-lived workers, e.g. restarted every epoch, would otherwise vanish from
        # the job's CPU and look like another process's).
        alive = {r.pid for r in raws}
        counted: dict[int, float] = {}
        for pid in [p for p in self._prev_cpu if p not in alive]:
            _, cpu_s, _, ppid = self._prev_cpu.pop(pid)
            counted[ppid] = counted.get(ppid, 0.0) + cpu_s
        out: list[ProcessSample] = []
        for raw in raws:
            pid = raw.pid
            prev = self._prev_cpu.get(pid)
            if prev is None:  # first seen: its mean since it started, over this tick's span when younger
                try:
                    age = max(1e-3, proctree.uptime_s(self.proc) - raw.start_s)
                except OSError:
                    age = 1.0
                span = t - self._last_t if self._last_t is not None else 0.0
                pct = 100.0 * raw.cpu_s / max(age, span)
            else:
                reaped = max(0.0, raw.children_cpu_s - prev[2] - counted.get(pid, 0.0))
                pct = 100.0 * (raw.cpu_s - prev[1] + reaped) / max(1e-6, t - prev[0])
            self._prev_cpu[pid] = (t, raw.cpu_s, raw.children_cpu_s, raw.ppid)
            out.append(ProcessSample(
                t=t, pid=pid, ppid=raw.ppid, name=raw.name,
                role=role[pid],
                cpu_percent=round(max(0.0, pct), 2), num_threads=raw.num_threads,
                ctx_voluntary=raw.ctx_voluntary, ctx_involuntary=raw.ctx_involuntary,
                rss_bytes=raw.rss_bytes,
                uss_bytes=self.uss.read(pid, raw.minflt) if pid == uss_pid else None,
                read_bytes=raw.read_bytes, status=raw.state, cpu_core=raw.core))
        self._pids = [r.pid for r in raws]
        self._last_t = t
        return out


def _parse_stat(text: str) -> tuple[dict[str, list[int]], int | None]:
    cpus: dict[str, list[int]] = {}
    running: int | None = None
    for line in text.splitlines():
        if line.startswith("cpu"):
            name, *vals = line.split()
            cpus[name] = [int(v) for v in vals]
        elif line.startswith("procs_running"):
            running = int(line.split()[1])
    return cpus, running


def _busy_idle(vals: list[int]) -> tuple[int, int, int]:
    # user nice system idle iowait irq softirq steal [guest guest_nice]; guest is already in user.
    total = sum(vals[:8])
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    iowait = vals[4] if len(vals) > 4 else 0
    return total, idle, iowait


class ProcSystemBackend:
    """Per-core CPU %, iowait, run queue (procs_running), load and memory from /proc."""

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root
        self._prev: dict[str, list[int]] | None = None
        self._psutil_started = False

    def _read(self, name: str) -> str:
        return proctree.read_file(f"{self.root}/proc/{name}").decode()

    def sample(self, t: float) -> SystemSample | None:
        try:
            cpus, running = _parse_stat(self._read("stat"))
        except OSError:
            return self._psutil_sample(t)
        prev, self._prev = self._prev, cpus
        if prev is None:
            return None
        per_core: list[float] = []
        names = sorted((n for n in cpus if n != "cpu"), key=lambda n: int(n[3:]))
        for n in names:
            if n not in prev:
                continue
            tot1, idle1, _ = _busy_idle(prev[n])
            tot2, idle2, _ = _busy_idle(cpus[n])
            dt = tot2 - tot1
            per_core.append(round(100.0 * (1 - (idle2 - idle1) / dt), 1) if dt > 0 else 0.0)
        iowait: float | None = None
        if "cpu" in cpus and "cpu" in prev:
            tot1, _, io1 = _busy_idle(prev["cpu"])
            tot2, _, io2 = _busy_idle(cpus["cpu"])
            iowait = round(100.0 * (io2 - io1) / (tot2 - tot1), 2) if tot2 > tot1 else 0.0
        mem = self._meminfo()
        try:
            load1 = os.getloadavg()[0]
        except OSError:
            load1 = 0.0
        return SystemSample(
            t=t, cpu_percent_per_core=per_core, iowait_percent=iowait, load1=load1,
            procs_running=running, mem_used_bytes=mem["MemTotal"] - mem["MemAvailable"],
            mem_total_bytes=mem["MemTotal"], swap_used_bytes=mem["SwapTotal"] - mem["SwapFree"])

    def _psutil_sample(self, t: float) -> SystemSample | None:
        """No /proc (macOS): per-core CPU and memory through psutil; no iowait or run queue."""
        per_core = [float(c) for c in psutil.cpu_percent(percpu=True)]
        first, self._psutil_started = not self._psutil_started, True
        if first:  # psutil's first reading covers nothing
            return None
        vm, sw = psutil.virtual_memory(), psutil.swap_memory()
        try:
            load1 = os.getloadavg()[0]
        except OSError:
            load1 = 0.0
        return SystemSample(t=t, cpu_percent_per_core=per_core, iowait_percent=None, load1=load1,
                            procs_running=None, mem_used_bytes=int(vm.total - vm.available),
                            mem_total_bytes=int(vm.total), swap_used_bytes=int(sw.used))

    def _meminfo(self) -> dict[str, int]:
        out = {"MemTotal": 0, "MemAvailable": 0, "SwapTotal": 0, "SwapFree": 0}
        try:
            text = self._read("meminfo")
        except OSError:
            vm, sw = psutil.virtual_memory(), psutil.swap_memory()
            return {"MemTotal": vm.total, "MemAvailable": vm.available, "SwapTotal": sw.total,
                    "SwapFree": sw.free}
        missing = len(out)
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key in out:
                out[key] = int(rest.split()[0]) * 1024
                missing -= 1
                if not missing:  # the four keys sit in the first ~16 of ~55 lines
                    break
        return out
