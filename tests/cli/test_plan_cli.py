"""`cpuwise plan`: from a doctor recording, and from a pipeline it runs briefly."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from cpuwise._schema import PipelineStats, StageEntry, StepRecord
from cpuwise.cli.app import build_app
from cpuwise.testing.recordings import fake_recording


def test_plan_from_a_recording(tmp_path: Path) -> None:
    rec = fake_recording("input_bound")
    rec.steps = [StepRecord(i, float(i), 0.3, 0.04, 0.01) for i in range(20)]
    rec.host["usable_cores"] = 8
    rec.pipeline_stats = [PipelineStats("p", items_out=10, stages=[
        StageEntry("map(decode)", "map", items=1000, time_s=10.0),
        StageEntry("batch(100)", "batch", items=10)])]
    path = rec.save(tmp_path / "recording.json")
    r = CliRunner().invoke(build_app(), ["plan", str(path), "--json"])
    assert r.exit_code == 0, r.output
    plan = json.loads(r.output)
    # 1 / (0.04 + 0.01) = 20 steps/s x 100 = 2000 samples/s x 10 s / 1000 samples = 20 cores, 3 nodes of 8
    assert abs(plan["cores_needed"] - 20.0) < 1e-9
    assert plan["nodes_needed"] == 3 and plan["enough_here"] is False
    r = CliRunner().invoke(build_app(), ["plan", str(path), "--cores-per-node", "32"])
    assert r.exit_code == 0 and "20.0 cores of preprocessing = 1 node(s) of 32 cores" in r.output


def test_plan_of_a_pipeline_and_bad_targets(tmp_path: Path) -> None:
    script = tmp_path / "pipe.py"
    script.write_text(textwrap.dedent("""
        import cpuwise.data as cd

        def slow(x):
            return sum(i * i for i in range(2000)) + x

        def make():
            return cd.from_sequence(list(range(400))).map(slow, backend="inline").batch(8)
    """))
    r = CliRunner().invoke(build_app(), ["plan", f"{script}:make", "--seconds", "1", "--target-rate", "1000",
                                         "--json"])
    assert r.exit_code == 0, r.output
    plan = json.loads(r.output)
    assert [s["name"] for s in plan["stages"]][:2] == ["from_sequence[400]", "map(slow)"]
    total = sum(s["cpu_s_per_sample"] for s in plan["stages"])
    assert abs(plan["cores_needed"] - 1000 * total) < 1e-6
    r = CliRunner().invoke(build_app(), ["plan", str(tmp_path / "nope.json")])
    assert r.exit_code == 2 and "cannot read recording" in r.output
    r = CliRunner().invoke(build_app(), ["plan", "no_colon_here"])
    assert r.exit_code == 2 and "FILE.py:FUNCTION" in r.output
    r = CliRunner().invoke(build_app(), ["plan", f"{script}:make", "--target-rate", "0"])
    assert r.exit_code == 2 and "--target-rate > 0" in r.output
    empty = fake_recording("input_bound").save(tmp_path / "empty.json")
    r = CliRunner().invoke(build_app(), ["plan", str(empty)])
    assert r.exit_code == 2 and "no cpuwise.data pipeline stats" in r.output
