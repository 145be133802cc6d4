"""cache_features reads back only validated JSON and raw arrays (issue 14, item 6): a tampered or
truncated cache is rebuilt, never unpickled and never a raw exception."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import cpuwise.data as cd  # noqa: E402
from cpuwise.data.tools.features import cache_features  # noqa: E402


class Tiny(torch.nn.Module):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(6, 3)
        self.calls = 0

    def forward(self, x):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.lin(x)


class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.marker,))


SAMPLES = [(np.full(6, i, np.float32), i % 3) for i in range(20)]


def run(path: Path, model: Tiny) -> list[tuple[np.ndarray, int]]:
    return [(np.array(x), int(y)) for x, y in cache_features(model, cd.from_sequence(SAMPLES), path,
                                                                batch_size=8, data_key="samples")]


def tamper(path: Path, what: str, marker: Path) -> None:
    manifest = path / "manifest.json"
    m = json.loads(manifest.read_text())
    if what == "rows":
        m["rows"] = "many"
    elif what == "shape":
        m["feature_shape"] = [4]
    elif what == "no labels file":
        (path / "labels.npy").unlink()
    elif what == "pickled labels":
        np.save(path / "labels.npy", np.array([Payload(str(marker))] * 20, dtype=object), allow_pickle=True)
    elif what == "pickled features":
        (path / "features.npy").write_bytes(pickle.dumps(Payload(str(marker))))
    elif what == "truncated features":
        data = (path / "features.npy").read_bytes()
        (path / "features.npy").write_bytes(data[: len(data) // 2])
    elif what == "manifest not json":
        manifest.write_bytes(b"\x80\x04not json")
        return
    elif what == "manifest a list":
        manifest.write_text("[1, 2]")
        return
    manifest.write_text(json.dumps(m))


@pytest.mark.parametrize("what", ["rows", "shape", "no labels file", "pickled labels", "pickled features",
                                  "truncated features", "manifest not json", "manifest a list"])
def test_a_tampered_feature_cache_is_rebuilt(tmp_path: Path, what: str) -> None:
    path, marker = tmp_path / "feats", tmp_path / "pwned"
    model = Tiny()
    first = run(path, model)
    assert model.calls == 3
    tamper(path, what, marker)
    again = run(path, model)
    assert model.calls == 6  # rebuilt from the backbone
    assert [y for _, y in again] == [y for _, y in first]
    assert all(np.allclose(a, b) for (a, _), (b, _) in zip(again, first, strict=True))
    assert not marker.exists()
    run(path, model)
    assert model.calls == 6  # the rebuilt cache is served
