"""Placement: scripted rates in, a split and a reason out (no GPU needed)."""

from __future__ import annotations

import pytest

from cpuwise.data.image.placement import decide, delivered_rate


@pytest.mark.parametrize(
    ("cpu", "workers", "gpu", "consumer", "mode", "expect"),
    [
        (900, 12, 8500, 4000, "auto", "cpu"),      # ResNet-50 on 16 cores: CPU covers it
        (900, 12, 8500, 12000, "auto", "hybrid"),  # ResNet-18: the CPU falls short
        (100, 2, 8500, 12000, "auto", "gpu"),      # 2 weak workers: nearly all on the GPU
        (900, 12, None, 12000, "auto", "cpu"),     # no GPU decoder
        (0, 0, 8500, 4000, "auto", "gpu"),         # no CPU budget
        (900, 12, 8500, 4000, "gpu", "gpu"),       # forced
        (900, 12, 8500, 4000, "hybrid", "hybrid"),
        (100, 2, 8500, 12000, "cpu", "cpu"),
    ],
)
def test_modes(cpu: float, workers: int, gpu: float | None, consumer: float, mode: str, expect: str) -> None:
    p = decide(cpu, workers, gpu, consumer, mode)
    assert p.mode == expect and p.why
    assert (p.gpu_fraction == 0) == (expect == "cpu") and (p.gpu_fraction == 1) == (expect == "gpu")
    assert 0 <= p.workers <= max(workers, 1)


def test_cpu_mode_uses_only_the_workers_it_needs() -> None:
    p = decide(900, 12, 8500, 4000)
    assert p.workers == 6  # ceil(4000 * 1.15 / 900)
    assert "6 of 12" in p.why and p.expected_img_s == 4000


def test_hybrid_split_balances_both_sides_and_beats_either_alone() -> None:
    c, w, g, t = 900, 12, 8500, 12000
    p = decide(c, w, g, t)
    f = p.gpu_fraction
    cpu_side = c * w / (1 - f)
    gpu_side = 1 / (1 / t + f / g)
    assert abs(cpu_side - gpu_side) / gpu_side < 0.02
    assert p.expected_img_s > delivered_rate(0.0, c * w, g, t)
    assert p.expected_img_s > delivered_rate(1.0, c * w, g, t)
    for other in (0.0, 0.02, 0.2, 0.5, 1.0):
        assert p.expected_img_s >= delivered_rate(other, c * w, g, t) - 1e-6


def test_slower_cpu_moves_work_to_the_gpu() -> None:
    fracs = [decide(c, 8, 8000, 10000).gpu_fraction for c in (1200, 900, 600, 300)]
    assert fracs == sorted(fracs) and fracs[0] < fracs[-1]


def test_a_seen_cpu_cap_moves_work_to_the_gpu() -> None:
    free = decide(473, 14, 11600, 12000)
    capped = decide(473, 14, 11600, 12000, cpu_cap=4500)
    assert capped.gpu_fraction > free.gpu_fraction and "capped at 4500" in capped.why


def test_fit_recovers_the_gpu_cost_from_windows() -> None:
    from cpuwise.data.image.placement import fit_gpu_cost

    t, g = 4000.0, 24000.0
    pts = [(f, 1 / (1 / t + f / g)) for f in (0.0, 0.5, 0.2, 0.5)]
    fit = fit_gpu_cost(pts)
    assert fit is not None and abs(fit[0] - t) < 1 and abs(fit[1] - g) < 10
    assert fit_gpu_cost(pts[:1]) is None and fit_gpu_cost([(0.5, 3000.0), (0.55, 2990.0)]) is None
    free = fit_gpu_cost([(0.0, 4000.0), (0.5, 4010.0)])
    assert free is not None and free[1] >= 1e9
