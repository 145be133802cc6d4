"""find_batch_size: the pure deciders (table-driven) and a real run on a small CPU model."""

from __future__ import annotations

import pytest

from cpuwise.data.tools.batchsize import (
    Measurement,
    choose_best,
    fit_memory,
    max_from_fit,
    next_probe,
    sweep_sizes,
)
from cpuwise.errors import ConfigError


@pytest.mark.parametrize(
    ("lo", "hi", "max_batch", "expected"),
    [
        (0, None, 1024, 1),      # nothing tried yet
        (1, None, 1024, 2),      # doubling
        (512, None, 1024, 1024),
        (600, None, 1000, 1000),  # capped at max_batch
        (1000, None, 1000, None),  # max_batch fits: done
        (64, 128, 1024, 96),     # bisect
        (96, 97, 1024, None),    # boundary found
        (0, 1, 1024, None),      # not even 1 fits
    ],
)
def test_next_probe(lo: int, hi: int | None, max_batch: int, expected: int | None) -> None:
    assert next_probe(lo, hi, max_batch) == expected


def _search(limit: int, max_batch: int) -> tuple[int, list[int]]:
    """Drive next_probe against a device where batches <= limit fit."""
    lo, hi, tried = 0, None, []
    b = next_probe(lo, hi, max_batch)
    while b is not None:
        tried.append(b)
        lo, hi = (b, hi) if b <= limit else (lo, b)
        b = next_probe(lo, hi, max_batch)
    return lo, tried


@pytest.mark.parametrize(("limit", "max_batch"), [(0, 64), (1, 64), (37, 4096), (300, 256), (1023, 1024),
                                                    (5000, 4096)])
def test_search_finds_the_exact_boundary_in_few_probes(limit: int, max_batch: int) -> None:
    found, tried = _search(limit, max_batch)
    assert found == min(limit, max_batch)
    assert len(tried) <= 2 * max_batch.bit_length() + 1


@pytest.mark.parametrize(
    ("points", "fixed", "per_sample"),
    [([(1, 150), (2, 250), (4, 450), (8, 850)], 50.0, 100.0),
     ([(2, 10), (4, 10)], 10.0, 0.0),
     ([(1, 100), (2, 90)], 110.0, 0.0)],  # a falling estimate is clamped to 0 per sample
)
def test_fit_memory(points: list[tuple[int, int]], fixed: float, per_sample: float) -> None:
    f, s = fit_memory(points)
    assert s == pytest.approx(per_sample)
    if per_sample:
        assert f == pytest.approx(fixed)


def test_fit_memory_needs_two_sizes() -> None:
    with pytest.raises(ConfigError):
        fit_memory([(4, 100)])
    with pytest.raises(ConfigError):
        fit_memory([(4, 100), (4, 120)])


@pytest.mark.parametrize(
    ("fixed", "per", "budget", "max_batch", "expected"),
    [(50, 100, 1050, 4096, 10), (50, 100, 1049, 4096, 9), (2000, 100, 1000, 64, 0),
     (0, 1, 10**9, 256, 256), (10, 0, 100, 77, 77), (200, 0, 100, 77, 0)],
)
def test_max_from_fit(fixed: float, per: float, budget: int, max_batch: int, expected: int) -> None:
    assert max_from_fit(fixed, per, budget, max_batch) == expected


def _m(b: int, sps: float | None, fits: bool = True) -> Measurement:
    return Measurement(b, fits, None, sps)


@pytest.mark.parametrize(
    ("ms", "expected"),
    [([_m(8, 100.0), _m(16, 200.0), _m(32, 210.0)], 32),
     ([_m(8, 100.0), _m(16, 205.0), _m(32, 210.0)], 16),   # within 3 %: the smaller batch
     ([_m(8, 100.0), _m(64, 500.0, fits=False)], 8),     # a batch that does not fit never wins
     ([_m(4, None)], None)],
)
def test_choose_best(ms: list[Measurement], expected: int | None) -> None:
    best = choose_best(ms)
    assert (best.batch if best else None) == expected


def test_sweep_sizes() -> None:
    assert sweep_sizes(1) == [1]
    assert sweep_sizes(8) == [1, 2, 4, 8]
    assert sweep_sizes(20) == [1, 2, 4, 8, 16, 20]
    assert sweep_sizes(0) == []


def test_real_cpu_model_fits_and_state_is_restored() -> None:
    torch = pytest.importorskip("torch")
    from cpuwise.data.tools.batchsize import find_batch_size

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = find_batch_size(model, torch.randn(32), max_batch=64, optimizer=opt, steps=1, sweep_time_s=2.0)
    assert r.max_batch == 64  # a tiny model fits the cap on any machine
    assert r.best_batch in {m.batch for m in r.measurements if m.samples_per_s}
    est = [m for m in r.measurements if m.note == "estimated"]
    assert [m.batch for m in est] == [1, 2, 4, 8]
    assert est[-1].peak_bytes is not None and est[0].peak_bytes is not None
    assert est[-1].peak_bytes > est[0].peak_bytes  # activations grow with the batch
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # the optimizer steps were undone
    assert model.training and not opt.state


def test_cpu_budget_limits_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from cpuwise.data.tools import batchsize

    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 2))
    monkeypatch.setattr(batchsize, "_cpu_budget", lambda headroom: 200_000)
    r = batchsize.find_batch_size(model, torch.randn(256), mode="infer", sweep=False, max_batch=10**6)
    est = [m for m in r.measurements if m.note == "estimated"]
    fixed, per = fit_memory([(m.batch, m.peak_bytes or 0) for m in est])
    assert r.max_batch == max_from_fit(fixed, per, 200_000, 10**6) and 0 < r.max_batch < 200
    assert r.best_batch == r.max_batch and r.best_samples_per_s is None


def test_bad_arguments() -> None:
    torch = pytest.importorskip("torch")
    from cpuwise.data.tools.batchsize import find_batch_size

    m = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="max_batch"):
        find_batch_size(m, torch.randn(2), max_batch=0)
    with pytest.raises(ConfigError, match="headroom"):
        find_batch_size(m, torch.randn(2), memory_headroom=1.5)
    with pytest.raises(ConfigError, match="mode"):
        find_batch_size(m, torch.randn(2), mode="fast")


@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_search_respects_the_budget() -> None:
    torch = pytest.importorskip("torch")
    from cpuwise.data.tools.batchsize import find_batch_size

    model = torch.nn.Sequential(torch.nn.Linear(4096, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 10))
    model = model.cuda()
    r = find_batch_size(model, torch.randn(4096), max_batch=1 << 20, memory_headroom=0.5, steps=2,
                        sweep_time_s=5.0)
    probes = [m for m in r.measurements if m.note != "timed"]
    assert r.max_batch > 1
    assert all(m.peak_bytes is None or m.peak_bytes <= r.budget_bytes for m in probes if m.fits)
    assert any(not m.fits for m in probes) or r.max_batch == 1 << 20
