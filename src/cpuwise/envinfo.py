"""Collect and render `cpuwise info`: machine, GPUs, library versions and thread pools."""

from __future__ import annotations

import importlib.metadata
import os
from typing import Any

from cpuwise.host import INFERENCE_FLAGS, has_vnni, host_facts
from cpuwise.monitor.nvml import probe_gpus

LIBRARIES = ("numpy", "torch", "onnxruntime", "onnx", "opencv-python-headless", "pillow", "simplejpeg")
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def thread_pools(load_torch: bool = True) -> dict[str, Any]:
    """The thread pools a process would use: threadpoolctl's view plus torch's own pools."""
    import numpy  # noqa: F401  - loads the BLAS so threadpoolctl can see it
    from threadpoolctl import threadpool_info

    pools: dict[str, Any] = {"env": {k: os.environ.get(k) for k in THREAD_ENV_VARS}}
    if load_torch:
        try:
            import torch  # lazy and optional: `cpuwise info` reports torch's pools only when asked

            pools["torch"] = {
                "intra_op": torch.get_num_threads(),
                "inter_op": torch.get_num_interop_threads(),
            }
        except ImportError:
            pools["torch"] = None
    pools["native"] = [
        {
            "api": p.get("user_api"),
            "library": p.get("internal_api"),
            "threads": p.get("num_threads"),
            "path": p.get("filepath"),
        }
        for p in threadpool_info()
    ]
    return pools


def collect_env(load_torch: bool = True) -> dict[str, Any]:
    facts = host_facts()
    pools = thread_pools(load_torch)
    per_process = max(
        [p["threads"] or 1 for p in pools["native"]] + [(pools.get("torch") or {}).get("intra_op", 1)]
    )
    return {
        "host": facts.to_dict(),
        "vnni": has_vnni(facts.cpu_flags),
        "gpus": probe_gpus(),  # NVML, or why there are no GPU metrics
        "libraries": {name: _version(name) for name in LIBRARIES},
        "thread_pools": pools,
        "threads_per_process": per_process,
        "oversubscription_example": {
            "workers": facts.usable_cores,
            "threads_each": per_process,
            "runnable_threads": facts.usable_cores * per_process,
            "usable_cores": facts.usable_cores,
        },
    }


def render_env(env: dict[str, Any]) -> Any:
    """A rich renderable for `cpuwise info`."""
    # lazy: collect_env() (the JSON view) needs no rich
    from rich.console import Group
    from rich.table import Table

    host = env["host"]
    quota = host["quota"]
    t = Table(title="Machine", show_header=False, title_justify="left")
    t.add_row("CPU", host["cpu_model"])
    t.add_row(
        "cores",
        f"{host['usable_cores']} usable (logical {host['logical_cores']}, affinity "
        f"{host['affinity_cores']}, quota {quota['cores'] if quota['cores'] is not None else 'none'}"
        f"{' from ' + quota['source'] if quota['cores'] is not None else ''})",
    )
    mem = host["memory_total_bytes"] / 2**30
    lim = host["memory_limit_bytes"]
    t.add_row("memory", f"{mem:.1f} GiB" + (f" (cgroup limit {lim / 2**30:.1f} GiB)" if lim else ""))
    flags = ", ".join(INFERENCE_FLAGS[f] for f, on in host["cpu_flags"].items() if on) or "none detected"
    t.add_row("CPU features", flags)
    t.add_row(
        "INT8",
        "VNNI/AMX present: exact fast INT8"
        if env["vnni"]
        else "no VNNI: ORT's default u8s8 INT8 can saturate; use reduce_range or U8U8",
    )
    gpus = env["gpus"]
    t.add_row(
        "GPUs",
        ", ".join(d["name"] for d in gpus["devices"]) if gpus["available"] else f"none ({gpus['reason']})",
    )
    libs = Table(title="Libraries", show_header=False, title_justify="left")
    for name, ver in env["libraries"].items():
        libs.add_row(name, ver or "[dim]not installed[/dim]")
    pools = env["thread_pools"]
    tp = Table(title="Thread pools (per process)", title_justify="left")
    tp.add_column("pool")
    tp.add_column("threads", justify="right")
    if pools.get("torch"):
        tp.add_row("torch intra-op", str(pools["torch"]["intra_op"]))
        tp.add_row("torch inter-op", str(pools["torch"]["inter_op"]))
    for p in pools["native"]:
        tp.add_row(f"{p['library']} ({p['api']})", str(p["threads"]))
    for k, v in pools["env"].items():
        if v is not None:
            tp.add_row(f"${k}", v)
    ex = env["oversubscription_example"]
    parts: list[Any] = [t, libs, tp]
    if ex["runnable_threads"] > ex["usable_cores"]:
        parts.append(
            f"[yellow]Heads-up:[/yellow] {ex['workers']} worker processes x {ex['threads_each']} "
            "threads each = "
            f"{ex['runnable_threads']} runnable threads on {ex['usable_cores']} usable cores. Cap each "
            "worker's pools (threadpoolctl.threadpool_limits(1), torch.set_num_threads(1)) or let "
            "cpuwise.data do it."
        )
    return Group(*parts)
