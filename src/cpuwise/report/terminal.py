"""The terminal summary of a doctor run, as a rich renderable.

Example:
    from rich.console import Console
    Console().print(render_summary(rec, diagnose(rec)))
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from cpuwise._schema import END_HUNG, Recording
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics, measure
from cpuwise.report import summary as sm

SEVERITY_STYLE = {"high": "bold red", "moderate": "yellow", "info": "green"}
MAX_PROCESS_ROWS = 10
MAX_STACK_LINES = 20


def _bar(share: float, width: int = 24) -> str:
    full = round(max(0.0, min(1.0, share)) * width)
    return "█" * full + "·" * (width - full)


def _header(rec: Recording, findings: list[Finding]) -> Panel:
    top = findings[0] if findings else None
    lines = Text()
    lines.append(sm.command_text(rec) + "\n", style="bold")
    lines.append(sm.ending_text(rec) + "\n")
    if top is not None:
        lines.append("Verdict: ", style="bold")
        lines.append(top.title, style=SEVERITY_STYLE.get(top.severity, ""))
        lines.append(f"  ({top.severity}, {100 * top.confidence:.0f} % confidence)\n")
        lines.append(top.summary)
    return Panel(lines, title="cpuwise doctor", title_align="left", border_style="cyan")


def _finding(i: int, f: Finding) -> RenderableType:
    parts: list[RenderableType] = []
    head = Text(f"{i}. ")
    head.append(f"[{f.severity.upper()}] ", style=SEVERITY_STYLE.get(f.severity, ""))
    head.append(f.title, style="bold")
    head.append(f"  ({100 * f.confidence:.0f} % confidence)", style="dim")
    parts.append(Text(f.summary))
    for e in f.evidence:
        parts.append(Text(f"• {e}", style="dim"))
    if f.fix:
        fix = Text("Fix: ", style="bold green")
        fix.append(f.fix)
        parts.append(fix)
    if f.fix_code:
        parts.append(Syntax(f.fix_code, "python", theme="ansi_dark", background_color="default"))
    return Group(head, Padding(Group(*parts), (0, 0, 0, 3)))


def _steps(m: Metrics) -> RenderableType:
    rows = sm.step_rows(m)
    if not rows:
        return Text(sm.step_caption(m), style="italic")
    table = Table(title="Step time", title_justify="left", caption=sm.step_caption(m), caption_justify="left")
    for col, just in (("part", "left"), ("mean ms", "right"), ("share", "right"), ("", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r.part, f"{r.mean_ms:.1f}", f"{100 * r.share:.0f} %", _bar(r.share))
    return table


def _processes(rec: Recording, m: Metrics) -> RenderableType:
    rows = sm.process_rows(rec)
    if not rows:
        return Text("No process samples were recorded.", style="italic")
    table = Table(title="Processes (CPU: 100 % = one core)", title_justify="left")
    for col in ("pid", "role", "mean CPU", "peak CPU", "peak RSS", "threads", "alive s"):
        table.add_column(col, justify="left" if col == "role" else "right")
    for r in rows[:MAX_PROCESS_ROWS]:
        table.add_row(
            str(r.pid),
            r.role,
            f"{r.mean_cpu:.0f} %",
            f"{r.peak_cpu:.0f} %",
            f"{r.peak_rss / 2**20:.0f} MiB",
            str(r.threads),
            f"{r.lifetime_s:.1f}",
        )
    roles = ", ".join(
        f"{r} {c:.2f}" for r, c in sorted(m.role_cpu_cores.items(), key=lambda x: sm.ROLE_ORDER.get(x[0], 9))
    )
    more = f"... and {len(rows) - MAX_PROCESS_ROWS} more processes. " if len(rows) > MAX_PROCESS_ROWS else ""
    table.caption = f"{more}Mean cores by role: {roles} (of {m.usable_cores} usable)"
    table.caption_justify = "left"
    return table


def _ranks(m: Metrics) -> list[RenderableType]:
    if not m.ranks:
        return []
    table = Table(title="Ranks", title_justify="left", caption=sm.ranks_caption(m), caption_justify="left")
    for col in sm.RANK_HEADER:
        table.add_column(col, justify="left" if col in ("ended", "workers") else "right")
    for row in sm.rank_rows(m):
        table.add_row(*row)
    return [table]


def _stacks(rec: Recording) -> list[RenderableType]:
    out: list[RenderableType] = []
    for pid, text in sorted(rec.stacks.items()):
        lines = text.rstrip().splitlines()
        shown = "\n".join(lines[:MAX_STACK_LINES]) + (
            f"\n... {len(lines) - MAX_STACK_LINES} more lines in report.html"
            if len(lines) > MAX_STACK_LINES
            else ""
        )
        out.append(Panel(Text(shown), title=f"stack of pid {pid}", title_align="left", border_style="dim"))
    return out


def _pipelines(rec: Recording) -> list[RenderableType]:
    out: list[RenderableType] = []
    for stats in rec.pipeline_stats:
        out.append(Text(sm.stats_caption(stats), style="bold"))
        table = Table()
        for col in sm.STAGE_HEADER:
            table.add_column(col, justify="left" if col in ("stage", "kind") else "right")
        for row in sm.stage_rows(stats):
            table.add_row(*row)
        out.append(table)
    return out


def render_summary(rec: Recording, findings: list[Finding], m: Metrics | None = None) -> RenderableType:
    """How the job ended, the verdict, every finding with evidence and fix, then the key tables.

    Args:
        m: `measure(rec)`, when the caller has it already (as `diagnose` took it).
    """
    m = measure(rec) if m is None else m
    rec = sm.cleaned(rec, m)
    parts: list[RenderableType] = [_header(rec, findings), Text("")]
    for i, f in enumerate(findings, 1):
        parts += [_finding(i, f), Text("")]
    parts += [_steps(m), *_ranks(m), _processes(rec, m), Text(sm.gpu_text(rec, m))]
    parts += _pipelines(rec)
    if rec.stacks and rec.end_reason == END_HUNG:
        parts += _stacks(rec)
    if rec.notes:
        parts.append(Text("Notes: " + "; ".join(rec.notes), style="dim"))
    return Group(*parts)
