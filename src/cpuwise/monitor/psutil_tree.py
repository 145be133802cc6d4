"""The portable process-tree sampler (psutil), for systems without Linux's /proc children files."""

from __future__ import annotations

import time

import psutil

from cpuwise._schema import ProcessSample
from cpuwise.monitor.roles import role_of


class PsutilProcessBackend:
    """Portable: samples the tree rooted at `root_pid` through psutil, each process in `oneshot()`."""

    def __init__(self, root_pid: int, *, refresh_every: int = 5, uss_every: int = 20) -> None:
        self.root_pid = root_pid
        self.refresh_every = max(1, refresh_every)
        self.uss_every = max(1, uss_every)
        self._procs: dict[int, psutil.Process] = {}
        self._prev_cpu: dict[int, tuple[float, float]] = {}  # pid -> (t, cpu seconds)
        self._cmdlines: dict[int, list[str]] = {}  # pid -> its command line, read once
        self._names: dict[int, str] = {}
        self._tick = 0
        self._root_name: str | None = None
        self._uss_ok = True

    def pids(self) -> list[int]:
        return list(self._procs)

    def _refresh(self) -> None:
        try:
            root = self._procs.get(self.root_pid) or psutil.Process(self.root_pid)
            kids = root.children(recursive=True)
        except psutil.Error:
            self._procs.pop(self.root_pid, None)
            return
        live = {self.root_pid: root}
        for k in kids:
            live[k.pid] = self._procs.get(k.pid, k)
        self._procs = live

    def sample(self, t: float, roles: dict[int, str]) -> list[ProcessSample]:
        if self._tick % self.refresh_every == 0 or self.root_pid not in self._procs:
            self._refresh()
        want_uss = self._uss_ok and self._tick % self.uss_every == 0
        self._tick += 1
        out: list[ProcessSample] = []
        gone: list[int] = []
        for pid, p in self._procs.items():
            try:
                with p.oneshot():
                    ct = p.cpu_times()
                    cpu_s = ct.user + ct.system
                    name = self._names.get(pid) or p.name()
                    ppid = p.ppid()
                    threads = p.num_threads()
                    ctx = p.num_ctx_switches()
                    rss = p.memory_info().rss
                    status = p.status()
                    core = p.cpu_num() if hasattr(p, "cpu_num") else None
                    if pid not in self._prev_cpu:
                        created = p.create_time()
                        self._cmdlines[pid] = p.cmdline()
                try:
                    read_bytes: int | None = p.io_counters().read_bytes
                except (psutil.AccessDenied, AttributeError, NotImplementedError):
                    read_bytes = None
                uss = self._uss(p) if want_uss else None
            except psutil.Error:
                gone.append(pid)
                continue
            self._names[pid] = name
            if pid == self.root_pid:
                self._root_name = name
            prev = self._prev_cpu.get(pid)
            if prev is None:
                age = max(1e-3, time.time() - created)
                cpu_pct = 100.0 * cpu_s / age
            else:
                cpu_pct = 100.0 * (cpu_s - prev[1]) / max(1e-6, t - prev[0])
            self._prev_cpu[pid] = (t, cpu_s)
            out.append(ProcessSample(
                t=t, pid=pid, ppid=ppid, name=name,
                role=role_of(pid, ppid, name, roles, self.root_pid, self._root_name,
                             cmdline=self._cmdlines.get(pid, ())),
                cpu_percent=round(max(0.0, cpu_pct), 2), num_threads=threads,
                ctx_voluntary=ctx.voluntary, ctx_involuntary=ctx.involuntary, rss_bytes=rss,
                uss_bytes=uss, read_bytes=read_bytes, status=status, cpu_core=core))
        for pid in gone:
            self._procs.pop(pid, None)
            self._prev_cpu.pop(pid, None)
            self._cmdlines.pop(pid, None)
        return out

    def _uss(self, p: psutil.Process) -> int | None:
        try:
            return int(p.memory_full_info().uss)
        except psutil.AccessDenied:
            self._uss_ok = False
            return None
        except (AttributeError, NotImplementedError):
            self._uss_ok = False
            return None
