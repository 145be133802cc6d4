"""The judge decides reliably: compositions are named by what they compose, the finalists are re-timed in
interleaved rounds until the ranking holds, and a candidate slower than its parent never survives."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from cpuwise.optimize.bench import BenchResult
from cpuwise.optimize.evaluate import Score
from cpuwise.optimize.io import IOConfig
from cpuwise.optimize.passes.base import Plan
from cpuwise.optimize.search.choose import Budget, Candidate, compose, techniques
from cpuwise.optimize.search.judge import Judge
from cpuwise.optimize.search.loop import drop_slower_than_parent, finalists


def cand(name: str, speed: float, score: float = 1.0, parent: str = "", **kw: Any) -> Candidate:
    technique = kw.pop("technique", "int8")
    return Candidate(name, technique, fp32=technique != "int8", score=Score(score, "cosine_mean"),
                     bench=BenchResult(1000 / speed, 1000 / speed, speed, 32), parent=parent, **kw)


def test_a_composition_is_named_by_its_techniques_in_pipeline_order() -> None:
    parts = {"io": "dynamic padding", "runtime": "OpenVINO", "int8": "NNCF INT8 static",
             "settings": "2 streams"}
    assert compose(parts) == "NNCF INT8 static + OpenVINO + 2 streams + dynamic padding"
    assert techniques(parts) == 3
    assert compose({"runtime": "ONNX Runtime", "fusion": "ORT transformer fusion"}) == \
        "ORT transformer fusion + ONNX Runtime FP32"


def test_a_candidate_slower_than_its_parent_is_dropped() -> None:
    base = cand("fp32", 100.0, technique="io")
    slow = cand("fp32 + tuned", 90.0, parent="fp32", technique="session")
    fast = cand("int8", 150.0, parent="fp32")
    notes = drop_slower_than_parent([base, slow, fast], "throughput")
    assert "slower than its parent 'fp32'" in slow.dropped and not fast.dropped and not base.dropped
    assert notes and notes[0].startswith("dropped fp32 + tuned")


def test_finalists_are_the_fastest_within_budget_with_their_parents_and_the_fallback(tmp_path: Any) -> None:
    plan = Plan(work=tmp_path, names=["x"], task="embedding", budget=Budget(0.01), target="throughput")
    ref = cand("torch", 10.0, technique="reference", deployable=False)
    fp32 = cand("fp32", 100.0, technique="io")
    q = cand("int8", 200.0, parent="fp32")
    bad = cand("int8 bad", 400.0, score=0.5, parent="fp32")
    picked = finalists([ref, fp32, q, bad], plan, 1.0)
    assert [c.name for c in picked] == ["int8", "fp32", "torch"]


def test_the_runoff_interleaves_rounds_until_the_ranking_holds() -> None:
    calls: list[str] = []

    def runner(name: str, seconds: float) -> Any:
        def run(feed: dict[str, np.ndarray]) -> np.ndarray:
            calls.append(name)
            time.sleep(seconds)
            return np.zeros((len(feed["x"]), 2), np.float32)
        return run

    judge = Judge(feed={"x": np.zeros((8, 4), np.float32)}, reference=np.zeros((8, 2)), task="generic")
    a = cand("a", 1.0, technique="io")
    b = cand("b", 1.0, technique="io")
    a.io = b.io = IOConfig(batch_size=8)
    report = judge.runoff([a, b], "throughput", {"a": runner("a", 0.002), "b": runner("b", 0.02)},
                          rounds=(3, 6))
    assert report["stable"] and 3 <= report["rounds"] <= 6 and report["order"] == ["a", "b"]
    assert a.bench is not None and b.bench is not None and a.bench.throughput > b.bench.throughput
    assert len(a.bench.extra["runoff"]) == report["rounds"]
    timed_calls = calls[2:]  # after one warm-up each
    assert timed_calls[:4] == ["a", "b", "b", "a"]  # A B, B A: both meet the same load
