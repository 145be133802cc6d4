"""ds.stats(): its shape (cpuwise._schema.PipelineStats), stage names, and what the doctor receives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from engine_fns import arange16

import cpuwise.data as cd


def test_stats_shape_names_and_doctor_hooks(tmp_path: Path) -> None:
    from cpuwise import _channel as channel

    channel_file = tmp_path / "channel.jsonl"
    channel.set_path(str(channel_file))
    try:
        ds = cd.from_sequence(list(range(30))).map(arange16, workers=2, backend="thread").batch(8).prefetch()
        assert len(list(ds)) == 4
    finally:
        channel.set_path(None)
    st = ds.stats()
    assert set(st) >= {"pipeline", "epoch", "items_out", "consumer_wait_ratio", "config", "stages",
                       "decisions"}
    assert st["items_out"] == 4 and 0.0 <= st["consumer_wait_ratio"] <= 1.0
    assert set(st["config"]) == {"workers", "backend", "prefetch", "cpu_budget", "ram_budget_bytes"}
    kinds = [s["kind"] for s in st["stages"]]
    assert kinds == ["source", "map", "batch", "prefetch"]
    for s in st["stages"]:
        assert {"name", "kind", "items", "time_s", "per_item_ms", "wait_ratio", "workers", "errors",
                "skipped"} <= set(s)
    assert st["stages"][1]["workers"] == 2 and st["stages"][1]["items"] == 30
    json.dumps(st)  # plain data
    lines = [json.loads(line) for line in channel_file.read_text().splitlines()]
    from cpuwise.testing.channel import step_lanes

    (lane,) = step_lanes(channel_file)
    assert lane.n == 4 and lane.epoch_starts == 1 and lane.data_wait_s >= 0  # 4 batches, the end closes
    assert any(rec["k"] == "pipeline_stats" and rec["p"]["items_out"] == 4 for rec in lines)


def test_fused_maps_report_one_stage_each_and_lazy_names() -> None:
    ds = cd.from_sequence(list(range(12))).map(arange16, name="first").map(np.sum, name="second")
    assert list(ds) == [int(np.arange(16).sum() + 16 * i) for i in range(12)]
    names = [s["name"] for s in ds.stats()["stages"]]
    assert names == ["from_sequence[12]", "map(first)", "map(second)"]
    with pytest.raises(AttributeError):
        cd.no_such_name  # noqa: B018
