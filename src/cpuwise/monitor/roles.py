"""Which role each process of the job plays (main, DataLoader worker, Ray's processes, other child), for
both tree samplers."""

from __future__ import annotations

from collections.abc import Sequence

from cpuwise._scaleout import ray_role

# multiprocessing's own helper processes: children of the job with its name, but never data workers.
MP_HELPERS = ("multiprocessing.forkserver", "multiprocessing.resource_tracker",
              "multiprocessing.semaphore_tracker")


def is_mp_helper(cmdline: str) -> bool:
    """Whether a command line is one of multiprocessing's helper processes."""
    return any(h in cmdline for h in MP_HELPERS)


def role_of(pid: int, ppid: int, name: str, roles: dict[int, str], root: int, root_name: str | None,
            helper: bool = False, cmdline: Sequence[str] = ()) -> str:
    """The role of one process: "main" (the root), what the job reported, Ray's role for its processes
    ("ray-worker", "ray-idle", "ray-system": `cpuwise._scaleout.ray_role`), else "worker" or "child".

    Args:
        roles: pid -> role as reported by the instrumented job (these win).
        root_name: the root process's name; forked DataLoader workers carry it.
        helper: the process is a multiprocessing helper (see `is_mp_helper`): never a worker.
        cmdline: its command line, where the sampler read it (Ray's daemons are told apart by it).
    """
    if pid == root:
        return "main"
    if pid in roles:
        return roles[pid]
    ray = ray_role(name, cmdline)
    if ray is not None:
        return ray
    # Forked DataLoader / multiprocessing workers carry their parent's name.
    return "worker" if ppid == root and name == root_name and not helper else "child"
