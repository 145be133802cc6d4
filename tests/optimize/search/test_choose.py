"""The budget, the Pareto front and the choice, including the impossible-budget fallback (pure)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpuwise.errors import ConfigError
from cpuwise.optimize.bench import BenchResult
from cpuwise.optimize.evaluate import Score
from cpuwise.optimize.search.choose import Budget, Candidate, choose, pareto_front, within


def cand(
    name: str,
    p50: float,
    score: float,
    *,
    technique: str = "x",
    fp32: bool = True,
    thr: float = 100.0,
    valid: bool = True,
    deployable: bool = True,
    cos_min: float | None = None,
) -> Candidate:
    extra = {"cosine_min": cos_min} if cos_min is not None else {}
    return Candidate(
        name,
        technique,
        fp32=fp32,
        deployable=deployable,
        bench=BenchResult(p50, p50, thr, 32),
        score=Score(score, "s", extra, valid=valid, reason="" if valid else "NaN"),
    )


def test_budget_parse_absolute_relative_and_bad() -> None:
    assert Budget.parse(0.01) == Budget(0.01, False)
    b = Budget.parse("2%")
    assert b.relative and math.isclose(b.max_drop, 0.02) and math.isclose(b.allowed(0.5), 0.01)
    for bad in ("-0.1", "abc", "nan"):
        with pytest.raises(ConfigError):
            Budget.parse(bad)


def test_choose_fastest_within_budget() -> None:
    cs = [cand("fp32", 10, 1.0), cand("int8-bad", 2, 0.95, fp32=False), cand("int8-ok", 4, 0.995, fp32=False)]
    c = choose(cs, 1.0, Budget(0.01), "latency")
    assert c.within_budget and c.chosen is cs[2]


def test_choose_throughput_target_uses_throughput() -> None:
    cs = [cand("a", 1, 1.0, thr=50), cand("b", 5, 1.0, thr=500)]
    assert choose(cs, 1.0, Budget(0.01), "throughput").chosen is cs[1]
    assert choose(cs, 1.0, Budget(0.01), "latency").chosen is cs[0]


def test_invalid_and_reference_candidates_are_never_chosen() -> None:
    cs = [
        cand("eager", 0.1, 1.0, deployable=False),
        cand("nan", 0.5, float("nan"), valid=False),
        cand("fp32", 3, 1.0),
    ]
    c = choose(cs, 1.0, Budget(0.01), "latency")
    assert c.chosen is cs[2]


def test_impossible_budget_keeps_fastest_fp32_and_says_so() -> None:
    cs = [cand("fp32-slow", 10, 0.9), cand("fp32-fast", 5, 0.9), cand("int8", 1, 0.8, fp32=False)]
    c = choose(cs, 1.0, Budget(0.01), "latency")
    assert not c.within_budget and c.chosen is cs[1] and "budget impossible" in c.message


def test_min_row_budget_rejects_bad_worst_case() -> None:
    ok = cand("ok", 2, 0.995, cos_min=0.985)
    bad = cand("bad", 1, 0.995, cos_min=0.95)
    assert within(ok, 1.0, Budget(0.01, min_row=0.98)) and not within(bad, 1.0, Budget(0.01, min_row=0.98))
    assert choose([ok, bad], 1.0, Budget(0.01, min_row=0.98), "latency").chosen is ok


def test_pareto_front() -> None:
    a, b, c = cand("a", 1, 0.9), cand("b", 2, 0.99), cand("c", 3, 0.95)  # c is dominated by b
    assert pareto_front([a, b, c], "latency") == [a, b]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.1, 100), st.floats(0.5, 1.0), st.booleans(), st.booleans()),
        min_size=1,
        max_size=8,
    ),
    st.floats(0.0, 0.2),
)
def test_chosen_is_never_outside_the_budget(
    items: list[tuple[float, float, bool, bool]], max_drop: float
) -> None:
    cs = [cand(str(i), p, s, fp32=f, valid=v) for i, (p, s, f, v) in enumerate(items)]
    c = choose(cs, 1.0, Budget(max_drop), "latency")
    if c.within_budget:
        assert c.chosen is not None and c.chosen.ok and 1.0 - c.chosen.score.value <= max_drop
        fits = [x for x in cs if x.ok and 1.0 - x.score.value <= max_drop]
        assert c.chosen.bench.p50_ms == min(x.bench.p50_ms for x in fits)
    else:
        assert all(not (x.ok and 1.0 - x.score.value <= max_drop) for x in cs)


def test_impossible_budget_never_falls_back_to_a_lossy_model() -> None:
    onnx = cand("onnx", 10, 0.9999, technique="onnx")
    prune = cand("prune", 3, 0.60, technique="prune", fp32=False)
    c = choose([onnx, prune], 1.0, Budget(0.0), "latency")
    assert not c.within_budget and c.chosen is onnx and "budget impossible" in c.message


def test_impossible_budget_without_lossless_keeps_the_most_accurate() -> None:
    int8 = cand("int8", 2, 0.8, technique="int8", fp32=False)
    prune = cand("prune", 1, 0.6, technique="prune", fp32=False)
    c = choose([prune, int8], 1.0, Budget(0.0), "latency")
    assert not c.within_budget and c.chosen is int8 and "most accurate" in c.message
