"""The `--try-fixes` table: change | samples/s | speed-up vs as is | share of the upper bound, and the
winning settings as a diff (terminal, HTML; report.json carries `TryFixes.to_dict()` as "trials")."""

from __future__ import annotations

from html import escape

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from cpuwise._trials import OK
from cpuwise.diagnose.trials import UPPER, TrialResult, TryFixes

HEADER = ["change", "samples/s", "speed-up vs as is", "share of upper bound", "note"]


def rows(outcome: TryFixes) -> list[list[str]]:
    """The table's rows as text (shared by the terminal and the HTML report)."""
    out = []
    for r in outcome.results:
        rate = "-" if r.samples_per_s is None else f"{r.samples_per_s:,.1f}" + (
            "" if r.unit == "samples/s" else " steps/s")
        speed = "-" if r.speedup is None else f"{r.speedup:.2f}x"
        share = "-" if r.share_of_upper is None else f"{100 * r.share_of_upper:.0f} %"
        note = r.status if r.status != OK else ""
        if r.reason:
            note = f"{note}: {r.reason}" if note else r.reason
        if outcome.best is not None and r is outcome.best:
            note = ("best; " + note) if note else "best"
        if r.kind == UPPER and not note:
            note = "input pipeline taken out"
        out.append([_label(r), rate, speed, share, note])
    return out


def _label(r: TrialResult) -> str:
    return r.change if r.kind != "combination" else f"{r.change} (combined)"


def headline(outcome: TryFixes) -> str:
    """One sentence: what won, by how much, and how much of the upper bound it reaches."""
    how = (f"{outcome.steps} measured steps per trial after {outcome.warmup} warm-up steps, "
           + ("one run each" if outcome.repeats == 1 else f"the median of {outcome.repeats} runs each"))
    best = outcome.best
    if best is None:
        return f"No fix helped by 5 % or more ({how})."
    share = f", {100 * best.share_of_upper:.0f} % of the upper bound" if best.share_of_upper else ""
    return f"Best: {best.change}: {best.speedup:.2f}x the as-is rate{share} ({how})."


def render_trials(outcome: TryFixes) -> RenderableType:
    """The trials table, the headline and the winning settings as a diff, for the terminal."""
    table = Table(title="cpuwise doctor --try-fixes: measured what-ifs", title_justify="left")
    for col in HEADER:
        table.add_column(col, justify="left" if col in ("change", "note") else "right",
                         overflow="fold")
    for row in rows(outcome):
        table.add_row(*row)
    parts: list[RenderableType] = [table, Text(headline(outcome), style="bold")]
    if outcome.code:
        parts += [Text(f"Paste this ({outcome.idiom}):", style="bold green"),
                  Syntax(outcome.code, "diff", theme="ansi_dark", background_color="default")]
    for note in outcome.notes:
        parts.append(Text(note, style="dim"))
    return Group(*parts)


def trials_html(outcome: TryFixes) -> str:
    """The trials section's body for report.html."""
    head = "".join(f"<th>{escape(h)}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows(outcome))
    parts = [f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
             f"<p><strong>{escape(headline(outcome))}</strong></p>"]
    if outcome.code:
        parts.append(f"<p>Paste this ({escape(outcome.idiom)}):</p><pre>{escape(outcome.code)}</pre>")
    parts += [f'<p class="note">{escape(n)}</p>' for n in outcome.notes]
    return "".join(parts)
