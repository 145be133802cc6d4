"""`cpuwise doctor --merge`: recordings of one distributed run on several nodes become one report: one
run and version only, clocks aligned by the steps' collectives, every rank in it, a straggler named
across nodes, each node's own findings kept."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cpuwise._schema import Recording
from cpuwise.cli import doctor as doctor_cli
from cpuwise.diagnose import diagnose
from cpuwise.diagnose.metrics import measure
from cpuwise.errors import RecordingError
from cpuwise.monitor.merge import merge
from cpuwise.testing.recordings import fake_recording

SKEW = 0.5  # node b's doctor started 0.5 s after node a's: its clock reads 0.5 s less for one instant


def node(rec: Recording, rank: int, name: str, *, shift: float = 0.0, wall_error: float = 0.0) -> Recording:
    """The part of a 2-rank fake recording that one node would have recorded (its rank, its workers)."""
    trainer = 1100 + rank
    keep = {1000, trainer} | {p.pid for p in rec.processes if p.ppid == trainer}
    ranks = {k: v for k, v in rec.job_info["ranks"].items() if int(k) == trainer}
    busy: dict[float, float] = {}
    for p in rec.processes:
        if p.pid in keep:
            busy[p.t] = busy.get(p.t, 0.05) + p.cpu_percent / 100.0  # this node's machine: its own processes
    cores = len(rec.system[0].cpu_percent_per_core)

    def own(t: float) -> list[float]:
        return [100 * busy.get(t, 0.05) / cores] * cores

    out = replace(
        rec,
        processes=[replace(p, t=round(p.t - shift, 4)) for p in rec.processes if p.pid in keep],
        system=[replace(s, t=round(s.t - shift, 4), cpu_percent_per_core=own(s.t))
                for s in rec.system],
        steps=[replace(s, t_start=s.t_start - shift) for s in rec.steps if s.pid == trainer],
        step_lanes=[],
        job_info={**rec.job_info, "ranks": {k: {**v, "master_addr": "10.0.0.1", "master_port": "29500",
                                                "torchelastic_run_id": "job-42"} for k, v in ranks.items()},
                  "dataloaders": [d for d in rec.job_info["dataloaders"] if d["pid"] == trainer]},
        host={**rec.host, "node": name},
        doctor={"cpuwise_version": "0.1.0", "t0_unix": 1_800_000_000.0 + shift + wall_error},
    )
    return replace(out, step_lanes=measure(out).lanes)  # as the channel would have summarised them


def two_nodes() -> list[Recording]:
    rec = fake_recording("straggler")
    return [node(rec, 0, "node-a"), node(rec, 1, "node-b", shift=SKEW, wall_error=0.2)]


def test_the_clocks_are_aligned_by_the_steps_not_the_wall_clocks() -> None:
    merged = merge(two_nodes(), ["node-a", "node-b"])
    starts = {}
    for s in merged.steps:
        starts.setdefault(s.index, {})[s.node] = s.t_start
    common = [v for v in starts.values() if len(v) == 2]
    assert len(common) >= 20
    assert max(abs(v["node-a"] - v["node-b"]) for v in common) < 1e-3  # the 0.2 s wall-clock error is gone
    assert any("step ends" in n for n in merged.notes)


def test_the_merged_report_names_the_straggler_across_nodes_and_keeps_each_nodes_findings() -> None:
    merged = merge(two_nodes(), ["node-a", "node-b"])
    m = measure(merged)
    assert sorted(r.rank for r in m.ranks) == [0, 1]
    assert {r.node for r in m.ranks} == {"node-a", "node-b"}
    findings = diagnose(merged, m)
    assert findings[0].id == "straggler" and "rank 1" in findings[0].title
    node_titles = [f.title for f in findings[1:]]
    assert any(t.startswith("[node-b]") for t in node_titles), node_titles


@pytest.mark.parametrize("spoil, message", [
    (lambda r: replace(r, doctor={**r.doctor, "cpuwise_version": "0.0.9"}), "one cpuwise version"),
    (lambda r: replace(r, job_info={**r.job_info, "ranks": {
        k: {**v, "torchelastic_run_id": "job-43"} for k, v in r.job_info["ranks"].items()}}),
     "different run ids"),
    (lambda r: replace(r, job_info={**r.job_info, "ranks": {
        k: {**v, "rank": 0} for k, v in r.job_info["ranks"].items()}}), "rank 0 appears in both"),
    (lambda r: replace(r, job_info={**r.job_info, "ranks": {}}), "no ranks in this recording"),
])
def test_recordings_of_different_runs_or_versions_are_a_clear_error(  # type: ignore[no-untyped-def]
        spoil, message: str) -> None:
    a, b = two_nodes()
    with pytest.raises(RecordingError, match=message):
        merge([a, spoil(b)], ["node-a", "node-b"])


def test_the_cli_merges_the_nodes_folders(tmp_path: Path) -> None:
    for rec in two_nodes():
        folder = tmp_path / str(rec.host["node"])
        folder.mkdir()
        rec.save(folder / "recording.json")
    app = typer.Typer()
    doctor_cli.register(app)

    @app.callback()
    def _root() -> None:
        pass

    out = tmp_path / "merged"
    r = CliRunner().invoke(app, ["doctor", "--out", str(out), "--json", "--merge", str(tmp_path / "node-a"),
                                 str(tmp_path / "node-b")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["findings"][0]["id"] == "straggler"
    html = (out / "report.html").read_text()
    assert "plot-timeline" in html and "node-b" in html
    bad = CliRunner().invoke(app, ["doctor", "--out", str(out), "--merge", str(tmp_path / "node-a")])
    assert bad.exit_code == 2 and "at least 2 nodes" in bad.output
