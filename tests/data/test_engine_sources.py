"""Sources, cache, repeat, filter, collate, stats shape and the doctor hooks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from engine_fns import arange16, to_array

import cpuwise.data as cd
from cpuwise.data.batch import collate
from cpuwise.data.sources import StrArray
from cpuwise.errors import PipelineError


def test_str_array_round_trips_and_is_compact() -> None:
    paths = [f"/data/train/class_{i % 7}/img_{i:07d}.jpg" for i in range(5000)] + ["ünïcode/ß.jpg", ""]
    arr = StrArray(paths)
    assert len(arr) == len(paths) and list(arr) == paths and arr[-2] == "ünïcode/ß.jpg"
    with pytest.raises(IndexError):
        arr[len(paths)]
    assert arr.nbytes < sum(len(p) for p in paths) + 8 * (len(paths) + 1) + 64
    ds = cd.from_sequence(paths)
    assert isinstance(ds._chain()[0].seq, StrArray) and list(ds) == paths


def test_from_folder_sorted_with_labels_and_classes(tmp_path: Path) -> None:
    for cls in ("b_dog", "a_cat"):
        (tmp_path / cls / "sub").mkdir(parents=True)
        for name in ("2.jpg", "1.png", "sub/0.jpeg", "skip.txt", ".hidden.jpg"):
            (tmp_path / cls / name).write_bytes(b"x")
    ds = cd.from_folder(tmp_path)
    assert ds.classes == ["a_cat", "b_dog"] and len(ds) == 6
    got = [(Path(p).relative_to(tmp_path).as_posix(), y) for p, y in ds]
    assert got == [("a_cat/1.png", 0), ("a_cat/2.jpg", 0), ("a_cat/sub/0.jpeg", 0),
                   ("b_dog/1.png", 1), ("b_dog/2.jpg", 1), ("b_dog/sub/0.jpeg", 1)]
    with pytest.raises(AttributeError):
        cd.from_sequence([1]).classes  # noqa: B018


def test_from_files_and_iterable_factory() -> None:
    assert list(cd.from_files(["a", "b"], labels=[3, 4])) == [("a", 3), ("b", 4)]
    assert list(cd.from_files([Path("x")])) == ["x"]
    ds = cd.from_iterable(lambda: (i * 2 for i in range(4)))
    assert list(ds) == list(ds) == [0, 2, 4, 6]
    with pytest.raises(TypeError, match="not known"):
        len(ds)


def test_collate_tuples_dicts_and_scalars() -> None:
    out = collate([(np.zeros((2, 2), np.uint8), 1, 0.5, "a", {"k": True}),
                   (np.ones((2, 2), np.uint8), 2, 1.5, "b", {"k": False})])
    imgs, labels, floats, names, d = out
    assert imgs.shape == (2, 2, 2) and imgs.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == [1, 2]
    assert floats.tolist() == [0.5, 1.5] and names == ["a", "b"] and d["k"].tolist() == [True, False]
    with pytest.raises(PipelineError, match=r"one shape.*\(2, 2\).*\(3, 3\)"):
        collate([np.zeros((2, 2)), np.zeros((3, 3))])


def test_batch_drop_last_len_and_custom_collate() -> None:
    ds = cd.from_sequence(list(range(10)))
    assert [b.tolist() for b in ds.batch(4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(ds.batch(4)) == 3 and len(ds.batch(4, drop_last=True)) == 2
    assert list(ds.batch(3, collate=sum)) == [3, 12, 21, 9]


def test_filter_and_repeat_reshuffle_each_pass() -> None:
    ds = cd.from_sequence(list(range(10))).shuffle(seed=1).filter(lambda x: x % 2 == 0).repeat(3)
    out = list(ds)
    passes = [out[0:5], out[5:10], out[10:15]]
    assert all(sorted(p) == [0, 2, 4, 6, 8] for p in passes)
    assert len({tuple(p) for p in passes}) > 1
    assert list(cd.from_sequence([]).repeat()) == []


def test_memory_cache_serves_later_epochs_without_running_upstream() -> None:
    calls = []

    def count(x: int) -> int:
        calls.append(x)
        return x

    ds = cd.from_sequence(list(range(20))).map(count, backend="inline").cache().shuffle(seed=0)
    e0, e1 = list(ds), list(ds)
    assert sorted(e0) == sorted(e1) == list(range(20)) and e0 != e1
    assert len(calls) == 20


def test_disk_cache_memory_maps_and_survives_a_new_pipeline(tmp_path: Path) -> None:
    def make() -> cd.Dataset:
        return (cd.from_sequence(list(range(50))).map(to_array, workers=2, backend="thread")
                .cache(tmp_path / "c"))

    first = [(a.copy(), y) for a, y in make()]
    assert (tmp_path / "c" / "done.json").exists()
    assert json.loads((tmp_path / "c" / "done.json").read_text())["count"] == 50
    again = make()
    second = list(again)
    assert all(np.array_equal(a, b) and y == z for (a, y), (b, z) in zip(first, second, strict=True))
    assert second[0][0].flags.writeable  # copy-on-write map: writable, never written back
    second[0][0][:] = 0
    assert np.array_equal(next(iter(make()))[0], first[0][0])
    changed = cd.from_sequence(list(range(50))).map(arange16).cache(tmp_path / "c")
    assert np.array_equal(next(iter(changed)), np.arange(16))  # other upstream: rebuilt, not stale


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


def test_shuffle_after_a_map_permutes_the_source_without_a_window() -> None:
    ds = cd.from_sequence(list(range(50))).map(lambda x: x * 10, backend="inline").shuffle(seed=4)
    stages = iter(ds).built.top.stages()
    assert [s.kind for s in stages] == ["source", "map", "shuffle"]
    assert type(stages[-1]).__name__ == "GlobalShuffle"
    e0, e1 = list(ds), list(ds)
    assert sorted(e0) == sorted(e1) == [10 * i for i in range(50)] and e0 != e1
    filtered = cd.from_sequence(list(range(50))).filter(bool).shuffle(seed=4)
    assert type(iter(filtered).built.top).__name__ == "WindowShuffle"
