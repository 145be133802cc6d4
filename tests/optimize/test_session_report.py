"""Session settings grid (pure) and the report renderers."""

from __future__ import annotations

import io

from rich.console import Console

from cpuwise.optimize.bench import BenchResult
from cpuwise.optimize.evaluate import Score
from cpuwise.optimize.report import OptimizeReport, table_rows, to_markdown
from cpuwise.optimize.runtimes.onnxruntime import SessionSettings, settings_grid, sweep_threads
from cpuwise.optimize.search.choose import Candidate


def test_settings_grid_and_sweep() -> None:
    grid = settings_grid(2, quick=True)
    assert {s.intra_op_threads for s in grid} == {1, 2}
    assert SessionSettings(intra_op_threads=2, spinning=False) in grid
    assert not any(s.intra_op_threads == 1 and not s.spinning for s in grid)
    assert any(s.execution_mode == "parallel" for s in settings_grid(8))
    assert sweep_threads(6) == [1, 2, 4, 6] and sweep_threads(1) == [1]
    s = SessionSettings(graph_level="basic", intra_op_threads=3, spinning=False)
    assert SessionSettings.from_dict(s.to_dict()) == s


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
