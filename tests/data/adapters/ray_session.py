"""One Ray session per test module: a local Ray or a two-node ray.cluster_utils.Cluster, on 2 CPUs,
with its files in a temporary folder that is removed afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TESTS_DATA = str(Path(__file__).resolve().parents[1])  # where ray_fns lives, for the Ray workers


@contextmanager
def ray_session(nodes: int = 0) -> Iterator[Any]:
    """ray.init on a fresh local Ray (nodes=0) or on a Cluster of `nodes` nodes of 1 CPU each."""
    import ray
    import ray.data

    tmp = tempfile.mkdtemp(prefix="cw-ray-")  # short: Ray's socket paths must fit 107 bytes
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_TMPDIR")}
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a throwaway local cluster: no token file in ~/.ray
    os.environ["RAY_TMPDIR"] = tmp  # every Ray file (sessions, the cluster address) under tmp/ray
    os.makedirs(os.path.join(tmp, "ray"))
    path = os.pathsep.join(filter(None, [TESTS_DATA, os.environ.get("PYTHONPATH")]))
    env = {"env_vars": {"PYTHONPATH": path}}
    cluster = None
    try:
        if nodes:
            from ray.cluster_utils import Cluster

            head = {"num_cpus": 1, "include_dashboard": False}
            cluster = Cluster(initialize_head=True, head_node_args=head)
            for _ in range(nodes - 1):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR", runtime_env=env)
        else:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                     runtime_env=env)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        yield ray
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp, ignore_errors=True)
