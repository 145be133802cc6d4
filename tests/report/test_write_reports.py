"""write_reports: the files, the JSON round trip, and TensorBoard only when it is installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cpuwise._optional import available
from cpuwise._schema import Recording
from cpuwise.diagnose import diagnose, verdict
from cpuwise.report import write_reports
from cpuwise.report.jsonout import load_findings
from cpuwise.testing.recordings import fake_recording


def test_writes_html_and_json_that_round_trip(tmp_path: Path) -> None:
    rec = fake_recording("input_bound")
    findings = diagnose(rec)
    paths = write_reports(rec, findings, tmp_path / "out")
    assert paths["html"].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    data = json.loads(paths["json"].read_text())
    assert set(data) == {"recording", "findings", "verdict"}
    assert data["verdict"] == verdict(findings) == "input_bound_cpu_saturated"
    assert Recording.load(paths["json"]) == Recording.load(paths["recording"]) == rec
    assert load_findings(paths["json"]) == findings


@pytest.mark.skipif(available("tensorboard"), reason="tensorboard is installed")
def test_tensorboard_skipped_and_noted_when_absent(tmp_path: Path) -> None:
    rec = fake_recording("compute")
    paths = write_reports(rec, diagnose(rec), tmp_path)
    assert "tensorboard" not in paths and not (tmp_path / "tb").exists()
    assert any("tensorboard is not installed" in n for n in rec.notes)
    assert "tensorboard is not installed" in paths["html"].read_text(encoding="utf-8")


def test_tensorboard_scalars_when_installed(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rec = fake_recording("gpu_underused")
    paths = write_reports(rec, diagnose(rec), tmp_path)
    acc = EventAccumulator(str(paths["tensorboard"]), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = set(acc.Tags().get("scalars", [])) | set(acc.Tags().get("tensors", []))
    assert {"step/data_wait_ms", "step/compute_ms", "cpu/main_cores", "gpu0/util_percent"} <= tags
