"""The optimize report: one row per candidate as data, markdown and a rich table."""

from __future__ import annotations

import io

from rich.console import Console

from cpuwise.optimize.bench import BenchResult
from cpuwise.optimize.evaluate import Score
from cpuwise.optimize.report import OptimizeReport, table_rows, to_markdown
from cpuwise.optimize.search.choose import Candidate


def test_report_renders_table_with_chosen_and_dropped() -> None:
    base = Candidate(
        "eager", "reference", deployable=False, bench=BenchResult(10, 12, 100, 32), score=Score(1.0, "s")
    )
    fast = Candidate(
        "int8",
        "int8",
        fp32=False,
        bench=BenchResult(2, 3, 500, 32),
        score=Score(0.995, "s"),
        size_bytes=5_000_000,
        notes=["reduce_range"],
    )
    bad = Candidate("nan", "x", dropped="12 NaN/inf values in the outputs")
    rows = table_rows([base, fast, bad], base, 1.0, "latency", fast, [base, fast])
    assert rows[1]["speedup"] == 5.0 and rows[1]["chosen"] and "speedup" not in rows[2]
    md = to_markdown(rows)
    assert "| int8 * | 5.00x |" in md and "DROPPED: 12 NaN" in md and "5.0 MB" in md
    buf = io.StringIO()
    Console(file=buf, width=160).print(OptimizeReport(rows, "chose int8"))
    text = buf.getvalue()
    assert "int8 *" in text and "5.00x" in text and "chose int8" in text
