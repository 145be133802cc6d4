"""Ray's processes under the doctor get Ray's roles (cpuwise._scaleout.ray_role) from both samplers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from cpuwise.monitor.procfs import ProcfsProcessBackend
from cpuwise.monitor.psutil_tree import PsutilProcessBackend
from cpuwise.monitor.roles import role_of

# The root starts a child titled as Ray titles a map task's worker (argv[0]) and one like a raylet.
SPAWN = """
import subprocess, sys, time
sleep = ["-c", "import time; time.sleep(600)"]
kids = [subprocess.Popen(["ray::MapBatches(decode)", *sleep], executable=sys.executable),
        subprocess.Popen(["/opt/ray/core/src/ray/raylet/raylet", *sleep], executable=sys.executable)]
print(" ".join(str(k.pid) for k in kids), flush=True)
time.sleep(600)
"""


def test_role_of_names_rays_processes_after_what_the_job_reported() -> None:
    assert role_of(7, 1, "ray::IDLE", {}, 1, "python") == "ray-idle"
    assert role_of(7, 5, "python", {}, 1, "python", cmdline=["ray::MapBatches(f)"]) == "ray-worker"
    assert role_of(7, 5, "raylet", {}, 1, "python") == "ray-system"
    assert role_of(7, 1, "ray::IDLE", {7: "worker"}, 1, "python") == "worker"  # the job's word wins
    assert role_of(7, 1, "python", {}, 1, "python") == "worker"  # a forked DataLoader worker
    assert role_of(7, 5, "python", {}, 1, "python", cmdline=["python", "x.py"]) == "child"


@pytest.mark.parametrize("backend", [ProcfsProcessBackend, PsutilProcessBackend])
def test_samplers_give_rays_titled_processes_their_roles(backend: type) -> None:
    root = subprocess.Popen([sys.executable, "-c", SPAWN], stdout=subprocess.PIPE, text=True)
    kids: list[int] = []
    try:
        assert root.stdout is not None
        kids = [int(p) for p in root.stdout.readline().split()]
        worker, raylet = kids
        sampler = backend(root.pid, refresh_every=1)
        # a process caught in its exec reads an empty command line: the sampler reads it again next tick
        deadline = time.monotonic() + 30
        while True:
            roles = {s.pid: s.role for s in sampler.sample(time.monotonic(), {})}
            if "worker" not in (roles.get(raylet), roles.get(worker)) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert roles[root.pid] == "main"
        assert roles[worker] == "ray-worker" and roles[raylet] == "ray-system"
    finally:
        for pid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        root.kill()
        root.wait()
