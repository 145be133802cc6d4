"""Render the search: one row per candidate (technique | speed-up | accuracy change | size | notes).

`table_rows` is pure data (what JSON and markdown use); `OptimizeReport` is a rich renderable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from cpuwise.optimize.search.choose import Candidate, speed

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console, ConsoleOptions, RenderResult


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n else "-"


def table_rows(
    cands: list[Candidate],
    baseline: Candidate,
    reference: float,
    target: str,
    chosen: Candidate | None,
    front: list[Candidate],
) -> list[dict[str, Any]]:
    """One dict per candidate with the numbers the report shows (pure)."""
    rows = []
    base = speed(baseline, target) if baseline.ok else float("nan")
    for c in cands:
        row: dict[str, Any] = {
            "technique": c.name,
            "kind": c.technique,
            "size_bytes": c.size_bytes,
            "chosen": c is chosen,
            "pareto": c in front,
            "dropped": c.dropped,
            "notes": "; ".join(([f"DROPPED: {c.dropped}"] if c.dropped else []) + c.notes),
        }
        if c.ok and c.bench is not None and c.score is not None:
            row.update(
                p50_ms=c.bench.p50_ms,
                p90_ms=c.bench.p90_ms,
                throughput=c.bench.throughput,
                speedup=speed(c, target) / base,
                score=c.score.value,
                score_name=c.score.name,
                accuracy_change=c.score.value - reference,
                **{k: v for k, v in c.score.extra.items()},
            )
        rows.append(row)
    return rows


def _fmt(row: dict[str, Any]) -> list[str]:
    if "speedup" not in row:
        return [row["technique"], "-", "-", "-", "-", _mb(row["size_bytes"]), row["notes"]]
    mark = " *" if row["chosen"] else (" +" if row["pareto"] else "")
    extra = f" (min {row['cosine_min']:.3f})" if "cosine_min" in row else ""
    return [
        row["technique"] + mark,
        f"{row['speedup']:.2f}x",
        f"{row['p50_ms']:.2f}",
        f"{row['throughput']:.0f}",
        f"{row['accuracy_change']:+.4f}{extra}",
        _mb(row["size_bytes"]),
        row["notes"],
    ]


HEADERS = ["technique", "speed-up", "p50 ms (b1)", "samples/s", "accuracy change", "size", "notes"]


def to_markdown(rows: list[dict[str, Any]], title: str = "") -> str:
    """The table as markdown, with the legend for the chosen and Pareto marks."""
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("|" + "---|" * len(HEADERS))
    for r in rows:
        lines.append("| " + " | ".join(x.replace("|", "/") for x in _fmt(r)) + " |")
    lines.append("")
    lines.append("`*` chosen, `+` on the Pareto front (speed vs accuracy).")
    return "\n".join(lines)


class OptimizeReport:
    """Rich renderable of the candidates table plus the verdict line."""

    def __init__(self, rows: list[dict[str, Any]], message: str, title: str = "cpuwise optimize") -> None:
        self.rows, self.message, self.title = rows, message, title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = Table(title=self.title, show_lines=False)
        for h in HEADERS:
            table.add_column(
                h,
                overflow="fold",
                justify="right" if h in ("speed-up", "p50 ms (b1)", "samples/s") else "left",
            )
        for r in self.rows:
            style = "bold green" if r["chosen"] else ("dim" if r["dropped"] else None)
            table.add_row(*_fmt(r), style=style)
        yield table
        yield f"* chosen, + Pareto front. {self.message}"
