"""cache(path)'s format (issue 14, item 6): nothing read back is unpickled; a tampered or truncated
record is rebuilt or a clear error, never code execution or a crash; items that the format cannot
hold are an error when they are written, naming where they sit."""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cpuwise.data as cd
from cpuwise.errors import ConfigError, PipelineError


class Payload:
    """A pickle that runs code when loaded: it creates the folder `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def sample(i: int) -> tuple[np.ndarray, int]:
    return np.full((3, 4), i, np.float32), i


def build(path: Path, calls: list[int] | None = None) -> cd.Dataset:
    def f(i: int) -> tuple[np.ndarray, int]:
        if calls is not None:
            calls.append(i)
        return sample(i)

    return cd.from_sequence(list(range(10))).map(f, backend="inline").cache(path)


def check(items: list[Any]) -> None:
    assert [int(y) for _, y in items] == list(range(10))
    assert all(np.array_equal(x, sample(i)[0]) for i, (x, _) in enumerate(items))


def evil_record(marker: Path, count: int = 10) -> bytes:
    """What the old format's meta.bin held (length-prefixed pickles), one per item, each running code."""
    body = pickle.dumps((pickle.dumps(Payload(marker)), []))
    return (struct.pack("<Q", len(body)) + body) * count


@pytest.mark.parametrize("name", ["meta.bin", "items.jsonl", "data.bin", "done.json"])
def test_a_tampered_record_never_runs_code(tmp_path: Path, name: str) -> None:
    path, marker = tmp_path / "cache", tmp_path / "pwned"
    check(list(build(path)))
    (path / name).write_bytes(evil_record(marker))  # meta.bin: what the old format unpickled
    calls: list[int] = []
    ds = build(path, calls)
    try:
        items = list(ds)
    except PipelineError as exc:  # a clear error is allowed; code execution is not
        assert "cache" in str(exc) and "Fix:" in str(exc)
    else:
        check(items)
    assert not marker.exists(), f"loading a tampered {name} ran code"


@pytest.mark.parametrize("damage", ["truncate data", "truncate items", "edit items", "garbage done",
                                    "old format done", "delete data"])
def test_a_damaged_record_is_rebuilt(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "cache"
    check(list(build(path)))
    data, items, done = path / "data.bin", path / "items.jsonl", path / "done.json"
    if damage == "truncate data":
        data.write_bytes(data.read_bytes()[:100])
    elif damage == "truncate items":
        items.write_bytes(items.read_bytes()[:-30])
    elif damage == "edit items":
        items.write_bytes(items.read_bytes().replace(b"[3,4]", b"[4,3]", 1))
    elif damage == "garbage done":
        done.write_bytes(b"\x00\xffnot json")
    elif damage == "old format done":
        done.write_text(json.dumps({"count": 10, "fingerprint": "x"}))
    else:
        data.unlink()
    calls: list[int] = []
    check(list(build(path, calls)))
    assert calls == list(range(10))  # rebuilt from upstream
    calls.clear()
    check(list(build(path, calls)))
    assert calls == []  # and the rebuilt record serves the next run


def rewrite_items(path: Path, edit: Any) -> None:
    """Change items.jsonl and make done.json agree, as a careful attacker would."""
    lines = (path / "items.jsonl").read_bytes().splitlines()
    lines[2] = edit(json.loads(lines[2]))
    body = b"".join(json.dumps(x, separators=(",", ":")).encode() + b"\n" if not isinstance(x, bytes)
                    else x + b"\n" for x in lines)
    (path / "items.jsonl").write_bytes(body)
    done = json.loads((path / "done.json").read_text())
    done.update(items_bytes=len(body), items_sha256=hashlib.sha256(body).hexdigest())
    (path / "done.json").write_text(json.dumps(done))


@pytest.mark.parametrize("edit,why", [
    (lambda n: {"t": [{"a": [n["t"][0]["a"][0], 8, "|O", [1]]}, 2]}, "Python objects"),
    (lambda n: {"t": [{"a": [1 << 40, 48, "<f4", [3, 4]]}, 2]}, "inside data.bin"),
    (lambda n: {"t": [{"a": [0, 48, "<f4", [30, 40]]}, 2]}, "bytes for shape"),
    (lambda n: {"t": [{"a": [0, 48, ["bogus", 7], [3, 4]]}, 2]}, "dtype"),
    (lambda n: {"x": 1}, "tagged"),
    (lambda n: {"d": [[{"l": []}, 1]]}, "key"),
    (lambda n: b"[" * 100000 + b"]" * 100000, "damaged"),
])
def test_a_consistently_tampered_line_is_a_clear_error(tmp_path: Path, edit: Any, why: str) -> None:
    path = tmp_path / "cache"
    check(list(build(path)))
    rewrite_items(path, edit)
    ds = build(path)
    with pytest.raises(PipelineError, match=r"item 2 of the record is damaged") as info:
        list(ds)
    assert why in str(info.value) and "delete the folder" in str(info.value)


def test_trees_round_trip_with_their_types(tmp_path: Path) -> None:
    fortran = np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4))
    tree = {
        "img": np.arange(24, dtype=np.uint8).reshape(2, 3, 4), "strided": np.arange(10.0)[::3],
        "fortran": fortran, "empty": np.zeros((0, 5), np.float64), "zero_d": np.array(7, np.int32),
        "rec": np.zeros(2, dtype=[("x", "<i4"), ("y", "<f8", (2,))]),
        "when": np.array(["2024-01-02"], "M8[D]"), "text": np.array(["ab", "ç"]),
        "label": np.int64(3), "score": np.float32(0.25), "flag": np.bool_(True),
        "py": (1, 2.5, True, None, "s\nline", b"\x00raw", 10**30, math.inf), "nested": [[{"k": (1, "a")}]],
        7: "int key", (1, "t"): "tuple key", None: "none key",
    }
    ds = cd.from_sequence([0, 1]).map(lambda i: tree, backend="inline").cache(tmp_path / "c")
    list(ds)
    for got in (list(ds), list(cd.from_sequence([0, 1]).map(lambda i: tree, backend="inline")
                               .cache(tmp_path / "c"))):
        assert len(got) == 2
        out = got[1]
        assert set(out) == set(tree)
        for key in ("img", "strided", "fortran", "empty", "zero_d", "rec", "when", "text"):
            assert out[key].dtype == tree[key].dtype and out[key].shape == tree[key].shape
            assert np.array_equal(out[key], tree[key])
        for key in ("label", "score", "flag"):
            assert type(out[key]) is type(tree[key]) and out[key] == tree[key]
        assert out["py"] == tree["py"] and type(out["py"][5]) is bytes
        assert out["nested"] == [[{"k": (1, "a")}]]
        assert out[7] == "int key" and out[(1, "t")] == "tuple key" and out[None] == "none key"


@pytest.mark.parametrize("bad,where", [
    ({1, 2}, "item[1]"),
    (np.array([object()], dtype=object), "item[1]"),
    ({"a": [1, Payload(Path("x"))]}, "item[1]['a'][1]"),
    ({frozenset(): 1}, "item[1]"),
])
def test_an_item_the_format_cannot_hold_is_an_error_at_write_time(tmp_path: Path, bad: Any,
                                                                  where: str) -> None:
    ds = cd.from_sequence([0, 1, 2]).map(lambda i: (np.zeros(2), bad if i == 1 else 0),
                                         backend="inline").cache(tmp_path / "c")
    with pytest.raises(ConfigError) as info:
        list(ds)
    msg = str(info.value)
    assert f"at {where}" in msg and "numpy arrays" in msg and ".cache() in memory" in msg
    assert not (tmp_path / "c" / "done.json").exists()


def test_special_files_in_the_cache_folder_are_replaced_not_opened(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    check(list(build(path)))
    for name in ("data.bin", "items.jsonl"):
        (path / name).unlink()
        os.mkfifo(path / name)  # opening either would block
    calls: list[int] = []
    check(list(build(path, calls)))
    assert calls == list(range(10)) and (path / "data.bin").is_file()
