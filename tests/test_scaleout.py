"""cpuwise._scaleout: the capacity plan checked against hand arithmetic, and Ray process roles."""

from __future__ import annotations

import math

import pytest

from cpuwise._scaleout import capacity_plan, plan_from_recording, plan_line, ray_role, stage_costs
from cpuwise._schema import PipelineStats, StageEntry, StepRecord
from cpuwise.testing.recordings import fake_recording


def stats() -> PipelineStats:
    """1000 samples through source -> map(decode) -> batch(100) -> prefetch."""
    name = "from_folder -> map(decode) -> batch(100) -> prefetch"
    return PipelineStats(pipeline=name, items_out=10, stages=[
        StageEntry("from_folder[1000]", "source", items=1000, time_s=0.2),
        StageEntry("map(decode)", "map", items=1000, time_s=10.0, workers=4),
        StageEntry("batch(100)", "batch", items=10, time_s=0.1),
        StageEntry("prefetch(auto)", "prefetch", items=10, time_s=3.0),  # waiting, not work
    ])


def test_costs_are_cpu_seconds_per_delivered_sample() -> None:
    costs, per_step = stage_costs(stats())
    assert per_step == 100
    assert costs == [("from_folder[1000]", "source", pytest.approx(0.0002)),
                     ("map(decode)", "map", pytest.approx(0.01)),
                     ("batch(100)", "batch", pytest.approx(0.0001))]


def test_plan_matches_hand_arithmetic() -> None:
    plan = capacity_plan([("map(decode)", "map", 0.0100), ("batch(100)", "batch", 0.0001)],
                         target_samples_s=2000, usable_cores=8, reserved_cores=1, cores_per_node=16)
    # 2000 samples/s x (0.0100 + 0.0001) s/sample = 20.2 cores; ceil(20.2 / 16) = 2 nodes
    assert plan.cores_needed == pytest.approx(20.2)
    assert plan.nodes_needed == 2
    assert plan.cores_here == 7 and plan.enough_here is False
    assert plan.samples_s_here == pytest.approx(7 / 0.0101)  # 693 samples/s on 7 spare cores
    assert [round(s.cores, 2) for s in plan.stages] == [20.0, 0.2]
    assert plan.stages[0].per_core_samples_s == pytest.approx(100.0)
    assert "20.2 cores" in plan.summary() and "2 node(s) of 16 cores" in plan.summary()


def test_plan_from_a_recording_uses_the_consumers_step_rate() -> None:
    rec = fake_recording("input_bound")
    rec.steps = [StepRecord(i, float(i), data_wait_s=0.3, compute_s=0.04, sync_s=0.01) for i in range(40)]
    rec.pipeline_stats = [stats()]
    rec.host["usable_cores"] = 8
    plan = plan_from_recording(rec)
    assert plan is not None
    # 1 / (0.04 + 0.01) = 20 steps/s x 100 samples = 2000 samples/s;
    # (0.2 + 10 + 0.1) / 1000 = 0.0103 s/sample -> 20.6 cores; nodes of 8 cores: ceil(2.575) = 3
    assert plan.target_samples_s == pytest.approx(2000)
    assert plan.cores_needed == pytest.approx(20.6)
    assert plan.nodes_needed == 3 and plan.cores_per_node == 8 and plan.enough_here is False
    assert plan_line(plan).startswith("cpuwise plan: 2,000 samples/s")
    explicit = plan_from_recording(rec, target_samples_s=500, cores_per_node=16)
    assert explicit is not None and explicit.cores_needed == pytest.approx(5.15) and explicit.enough_here
    rec.pipeline_stats = []
    assert plan_from_recording(rec) is None


def test_the_h100_reference_plan() -> None:
    """DESIGN.md: 8 H100s train ResNet-50 at 3993 img/s each on synthetic data; 16-core nodes; the
    stock torchvision recipe decodes 266 img/s per core, cpuwise's OpenCV path 904."""
    target = 8 * 3993
    stock = capacity_plan([("stock", "map", 1 / 266)], target_samples_s=target, usable_cores=16,
                          reserved_cores=8, cores_per_node=16)
    assert stock.cores_needed == pytest.approx(target / 266)  # 120.1 cores
    assert stock.nodes_needed == 8 and not stock.enough_here
    fast = capacity_plan([("opencv", "map", 1 / 904)], target_samples_s=target, usable_cores=16,
                         reserved_cores=8, cores_per_node=16)
    assert math.isclose(fast.cores_needed or 0, 35.34, rel_tol=1e-3) and fast.nodes_needed == 3


def test_capacity_only_without_a_target() -> None:
    plan = capacity_plan([("map", "map", 0.002)], target_samples_s=None, usable_cores=4, reserved_cores=1)
    assert plan.cores_needed is None and plan.nodes_needed is None and plan.enough_here is None
    assert plan.samples_s_here == pytest.approx(1500)
    assert "each 1,000 samples/s needs 2.0 cores" in plan.summary()


@pytest.mark.parametrize("name,cmdline,role", [
    ("ray::MapBatches(f)", ["ray::MapBatches(f)"], "ray-worker"),
    ("ray::SplitCoordina", ["ray::SplitCoordinator"], "ray-worker"),
    ("ray::IDLE", ["ray::IDLE"], "ray-idle"),
    ("ray::_StatsActor", ["ray::_StatsActor"], "ray-system"),
    ("ray::DashboardAg", ["ray::DashboardAgent"], "ray-system"),
    ("raylet", ["/venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet", "--x"], "ray-system"),
    ("gcs_server", ["/venv/ray/core/src/ray/gcs/gcs_server"], "ray-system"),
    ("python", ["/venv/bin/python", "-u", "/venv/site-packages/ray/_private/log_monitor.py"], "ray-system"),
    ("python", ["/venv/bin/python", "/venv/site-packages/ray/dashboard/dashboard.py"], "ray-system"),
    ("python", ["python", "train.py"], None),
    ("pt_data_worker", [], None),
])
def test_ray_roles(name: str, cmdline: list[str], role: str | None) -> None:
    assert ray_role(name, cmdline) == role
