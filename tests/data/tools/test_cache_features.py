"""cache_features: run the backbone once, re-use the memory-mapped cache, rebuild on a changed fingerprint."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import cpuwise.data as cd  # noqa: E402
from cpuwise.data.tools.features import FeatureTable, cache_features, data_fingerprint  # noqa: E402
from cpuwise.errors import ConfigError  # noqa: E402

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def _samples(n: int = 37, seed: int = 0) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), int(i % 5)) for i in range(n)]


class Counting(torch.nn.Module):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.calls = 0

    def forward(self, x):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.net(x)


def _expected(model: Counting, samples: list[tuple[np.ndarray, int]]) -> np.ndarray:
    x = np.stack([s[0] for s in samples]).astype(np.float64).transpose(0, 3, 1, 2) / 255.0
    x = (x - MEAN[None, :, None, None]) / STD[None, :, None, None]
    model.eval()
    with torch.no_grad():
        return model.net(torch.from_numpy(x).float()).numpy()


def test_features_match_the_backbone_and_are_memory_mapped(tmp_path: Path) -> None:
    samples, model = _samples(), Counting()
    model.train()
    feats = cache_features(model, cd.from_sequence(samples), tmp_path / "c", batch_size=8,
                           normalize="imagenet")
    assert model.training  # the caller's mode is restored
    assert model.calls == 5  # ceil(37 / 8) batches, once
    rows = list(feats)
    assert len(feats) == len(rows) == 37
    np.testing.assert_allclose(np.stack([r[0] for r in rows]), _expected(model, samples),
                               rtol=1e-4, atol=1e-5)
    assert [int(r[1]) for r in rows] == [s[1] for s in samples]
    table = feats._chain()[0].seq
    assert isinstance(table, FeatureTable) and isinstance(table.features, np.memmap)
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["rows"] == 37 and manifest["feature_shape"] == [4] and manifest["has_labels"]


def test_cache_is_reused_and_training_never_runs_the_backbone(tmp_path: Path) -> None:
    samples, model = _samples(), Counting()
    cache_features(model, cd.from_sequence(samples), tmp_path, batch_size=16)
    assert model.calls == 3
    again = cache_features(model, cd.from_sequence(samples), tmp_path, batch_size=16)
    assert model.calls == 3  # fingerprint matched: nothing recomputed
    head = torch.nn.Linear(4, 5)
    for _ in range(3):
        for x, y in again.shuffle(seed=0).batch(10).to_torch():
            assert x.dtype == torch.float32 and y.dtype == torch.int64
            head(x).sum().backward()
    assert model.calls == 3


def test_changed_weights_or_data_rebuild(tmp_path: Path) -> None:
    samples, model = _samples(), Counting()
    cache_features(model, cd.from_sequence(samples), tmp_path, batch_size=37)
    fp1 = json.loads((tmp_path / "manifest.json").read_text())["fingerprint"]
    with torch.no_grad():
        model.net[0].weight.add_(0.1)
    cache_features(model, cd.from_sequence(samples), tmp_path, batch_size=37)
    assert model.calls == 2
    fp2 = json.loads((tmp_path / "manifest.json").read_text())["fingerprint"]
    other = cache_features(model, cd.from_sequence(_samples(seed=1)), tmp_path, batch_size=37,
                           normalize="imagenet")
    fp3 = json.loads((tmp_path / "manifest.json").read_text())["fingerprint"]
    assert model.calls == 3 and len({fp1, fp2, fp3}) == 3
    np.testing.assert_allclose(np.stack([r[0] for r in other]), _expected(model, _samples(seed=1)),
                               rtol=1e-4, atol=1e-5)


def test_fingerprint_sees_map_settings_but_not_memory_addresses() -> None:
    class Crop:
        def __init__(self, size: int) -> None:
            self.size = size

        def __call__(self, s):  # type: ignore[no-untyped-def]
            return s

    base = cd.from_sequence(_samples(4))
    assert data_fingerprint(base.map(Crop(4))) == data_fingerprint(base.map(Crop(4)))
    assert data_fingerprint(base.map(Crop(4))) != data_fingerprint(base.map(Crop(5)))


def test_in_memory_mode_and_unlabelled_samples() -> None:
    model = Counting()
    images = [s[0] for s in _samples(10)]
    feats = cache_features(model, cd.from_sequence(images), None, batch_size=4)
    rows = list(feats)
    assert len(rows) == 10 and isinstance(rows[0], np.ndarray) and rows[0].shape == (4,)


def test_failure_midway_leaves_no_valid_looking_cache(tmp_path: Path) -> None:
    class Broken(Counting):
        def forward(self, x):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("boom")
            return self.net(x)

    with pytest.raises(RuntimeError, match="boom"):
        cache_features(Broken(), cd.from_sequence(_samples()), tmp_path, batch_size=8)
    assert not (tmp_path / "manifest.json").exists() and not (tmp_path / "features.npy").exists()
    model = Counting()
    assert len(cache_features(model, cd.from_sequence(_samples()), tmp_path, batch_size=8)) == 37


def test_feature_table_pickles_without_its_data(tmp_path: Path) -> None:
    feats = cache_features(Counting(), cd.from_sequence(_samples()), tmp_path, batch_size=37)
    table = feats._chain()[0].seq
    clone = pickle.loads(pickle.dumps(table))
    assert len(pickle.dumps(table)) < 2000
    np.testing.assert_array_equal(clone[5][0], table[5][0])


def test_bad_batch_size_and_unfingerprintable_input() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        cache_features(Counting(), cd.from_sequence(_samples()), None, batch_size=0)
    with pytest.raises(ConfigError, match="data_key"):
        cache_features(Counting(), iter(_samples()), None)


@pytest.mark.gpu
def test_cuda_backbone_gives_the_cpu_features(tmp_path: Path) -> None:
    samples = _samples()
    cpu = np.stack([r[0] for r in cache_features(Counting(), cd.from_sequence(samples), None, batch_size=8,
                                                 normalize="imagenet")])
    model = Counting().cuda()
    gpu = cache_features(model, cd.from_sequence(samples), tmp_path, device="cuda", batch_size=8,
                         normalize="imagenet", channels_last=True)
    np.testing.assert_allclose(np.stack([r[0] for r in gpu]), cpu, rtol=1e-3, atol=1e-3)
