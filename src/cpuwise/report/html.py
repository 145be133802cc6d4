"""One self-contained HTML report: findings first, then plots over time (inline SVG, no scripts).

Every string that comes from the recording goes through html.escape. Plots carry ids
(plot-cpu-cores, plot-process-cpu, plot-gpu, plot-memory, plot-steps, plot-timeline) so tests can find
them.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape

from cpuwise._schema import Recording
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics, measure
from cpuwise.diagnose.nodes import node_view, nodes_of
from cpuwise.diagnose.trials import TryFixes
from cpuwise.report import summary as sm
from cpuwise.report import svg
from cpuwise.report.style import CSS
from cpuwise.report.trials import trials_html

ROLE_COLORS = {"main": "#2e86ab", "rank": "#1b4f72", "worker": "#e4572e", "ray-worker": "#f3a712",
               "ray-idle": "#c9b79c", "ray-system": "#5d576b", "child": "#8e6c8a"}
WORKER_BUSY_COLOR = "#16a085"  # a data worker on the CPU, in the timeline
STEP_COLORS = {"data-wait": "#e4572e", "compute": "#2e86ab", "sync": "#f3a712"}
GIB = 2**30


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def _section(title: str, body: str, caption: str = "") -> str:
    cap = f'<p class="caption">{escape(caption)}</p>' if caption else ""
    return f'<section class="card"><h2>{escape(title)}</h2>{cap}{body}</section>'


def plot_cpu_cores(rec: Recording, suffix: str = "") -> str:
    """Heatmap: every core of the machine over time."""
    if not rec.system:
        return _note("No system samples were recorded.")
    n = max(len(s.cpu_percent_per_core) for s in rec.system)
    xs = [s.t for s in rec.system]
    rows = [
        (
            f"cpu{c}",
            [s.cpu_percent_per_core[c] if c < len(s.cpu_percent_per_core) else 0.0 for s in rec.system],
        )
        for c in range(n)
    ]
    return svg.heatmap("plot-cpu-cores" + suffix, "CPU busy per core", xs, rows, x_label="time (s)")


def plot_process_cpu(rec: Recording, m: Metrics, suffix: str = "") -> str:
    """The job's cores over time, stacked by role, against the usable cores."""
    if not rec.processes:
        return _note("No process samples were recorded.")
    per_t: dict[float, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for p in rec.processes:
        per_t[p.t][p.role] += p.cpu_percent / 100.0
    xs = sorted(per_t)
    roles = sorted({p.role for p in rec.processes}, key=lambda r: sm.ROLE_ORDER.get(r, 9))
    layers = [(r, ROLE_COLORS.get(r, "#7f8c8d"), [per_t[t][r] for t in xs]) for r in roles]
    return svg.stacked_area(
        "plot-process-cpu" + suffix,
        "CPU of the job's processes, stacked by role",
        xs,
        layers,
        x_label="time (s)",
        y_label="cores",
        limit=(f"{m.usable_cores} usable cores", float(m.usable_cores)),
    )


def plot_gpu(rec: Recording) -> str:
    """Utilisation, SM activity / occupancy and memory of each GPU over time (or why there are none)."""
    if not rec.gpu.available or not rec.gpus:
        why = rec.gpu.reason if not rec.gpu.available else "GPU metrics were available but no samples came in"
        return _note(f"GPU metrics unavailable: {why or 'no reason recorded'}")
    series = []
    palette = ["#76b900", "#2e86ab", "#8e6c8a", "#e4572e", "#f3a712", "#16a085"]
    for i, idx in enumerate(sorted({g.index for g in rec.gpus})):
        gs = [g for g in rec.gpus if g.index == idx]
        tag = f"GPU{idx} " if len({g.index for g in rec.gpus}) > 1 else ""
        util = [(g.t, g.util_percent) for g in gs if g.util_percent is not None]
        sm_act = [(g.t, g.sm_activity_percent) for g in gs if g.sm_activity_percent is not None]
        mem = [
            (g.t, 100.0 * g.mem_used_bytes / g.mem_total_bytes)
            for g in gs
            if g.mem_used_bytes is not None and g.mem_total_bytes
        ]
        series.append(svg.Series(f"{tag}utilisation %", palette[(3 * i) % 6], util))
        series.append(svg.Series(f"{tag}SM activity %", palette[(3 * i + 1) % 6], sm_act))
        occ = [(g.t, v) for g in gs if (v := getattr(g, "sm_occupancy_percent", None)) is not None]
        if occ:
            series.append(svg.Series(f"{tag}SM occupancy %", palette[(3 * i + 3) % 6], occ))
        series.append(svg.Series(f"{tag}memory used %", palette[(3 * i + 2) % 6], mem, dashed=True))
    return svg.line_chart(
        "plot-gpu",
        "GPU utilisation, SM activity and memory",
        series,
        x_label="time (s)",
        y_label="%",
        y_max=100.0,
    )


def plot_memory(rec: Recording, suffix: str = "") -> str:
    """RSS by role, the machine's used memory and (when any) swap over time."""
    if not rec.processes and not rec.system:
        return _note("No memory samples were recorded.")
    per_t: dict[float, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for p in rec.processes:
        per_t[p.t][p.role] += p.rss_bytes / GIB
    roles = sorted({p.role for p in rec.processes}, key=lambda r: sm.ROLE_ORDER.get(r, 9))
    series = [
        svg.Series(f"RSS {r}", ROLE_COLORS.get(r, "#7f8c8d"), [(t, v[r]) for t, v in sorted(per_t.items())])
        for r in roles
    ]
    series.append(
        svg.Series("system used", "#34495e", [(s.t, s.mem_used_bytes / GIB) for s in rec.system], dashed=True)
    )
    if any(s.swap_used_bytes for s in rec.system):
        series.append(
            svg.Series("swap used", "#c0392b", [(s.t, s.swap_used_bytes / GIB) for s in rec.system])
        )
    return svg.line_chart("plot-memory" + suffix, "Memory", series, x_label="time (s)", y_label="GiB")


def step_intervals(m: Metrics) -> list[tuple[float, int, float, float, float]]:
    """(interval start, steps, data-wait, compute, sync sums) of every lane, merged by start time."""
    merged: dict[float, list[float]] = {}
    for lane in m.lanes:
        for iv in lane.intervals:
            acc = merged.setdefault(round(iv.t, 3), [0, 0.0, 0.0, 0.0])
            acc[0] += iv.n
            acc[1] += iv.data_wait_s
            acc[2] += iv.compute_s
            acc[3] += iv.sync_s
    return [(t, int(v[0]), v[1], v[2], v[3]) for t, v in sorted(merged.items()) if v[0] > 0]


def plot_steps(m: Metrics) -> str:
    """Per interval of the run, the mean step split into data-wait, compute and sync (every step counted)."""
    rows = step_intervals(m)
    if not rows:
        return _note(
            "Step split unavailable: no step records (not a Python job run with cpuwise instrumentation)."
        )
    xs = [t for t, *_ in rows]
    layers = [
        ("data-wait", STEP_COLORS["data-wait"], [1e3 * w / n for _, n, w, _, _ in rows]),
        ("compute", STEP_COLORS["compute"], [1e3 * c / n for _, n, _, c, _ in rows]),
        ("sync", STEP_COLORS["sync"], [1e3 * s / n for _, n, _, _, s in rows]),
    ]
    return svg.stacked_bars("plot-steps", "Mean step time over the run (every step, per interval)", xs,
                            layers, x_label="time (s)", y_label="ms per step", integer_x=False)


MAX_TIMELINE_STEPS = 600  # per lane: beyond it the timeline shows the last contiguous steps kept


def timeline_window(rec: Recording, m: Metrics) -> tuple[float, float] | None:
    """The span the timeline shows: the whole run when every step was kept and they are few, else the
    last stretch where every lane has its steps whole (the recording keeps each lane's last steps)."""
    by_lane: dict[int | None, list[float]] = defaultdict(list)
    ends = []
    for s in sorted(rec.steps, key=lambda s: (s.pid or 0, s.index)):
        by_lane[s.pid].append(s.t_start)
        ends.append(s.t_start + s.total_s)
    if not ends:
        return None
    kept_all = sum(len(v) for v in by_lane.values()) >= sum(lane.n for lane in m.lanes)
    if kept_all and max(len(v) for v in by_lane.values()) <= MAX_TIMELINE_STEPS:
        return (min(min(v) for v in by_lane.values()), max(ends))
    starts = []
    for pid, times in by_lane.items():
        idx = sorted(s.index for s in rec.steps if s.pid == pid)
        run = 1
        while run < len(idx) and run < MAX_TIMELINE_STEPS and idx[-run - 1] == idx[-run] - 1:
            run += 1
        starts.append(times[-run])
    return (max(starts), max(ends))


def plot_timeline(rec: Recording, m: Metrics) -> str:
    """Gantt: a lane per training process (each rank) with its steps coloured by phase, and a lane per
    data worker, busy (on the CPU) or idle."""
    window = timeline_window(rec, m)
    if window is None:
        return _note("No step timeline: no step records.")
    t0, t1 = window
    rank_of = {r.pid: r.rank for r in m.ranks}
    lanes: list[tuple[str, list[svg.Segment]]] = []
    for pid in sorted({s.pid for s in rec.steps}, key=lambda p: (rank_of.get(p, -1) if p else -1, p or 0)):
        segs: list[svg.Segment] = []
        for s in rec.steps:
            if s.pid != pid or s.t_start + s.total_s < t0 or s.t_start > t1:
                continue
            a = s.t_start
            for part, dur in (("data-wait", s.data_wait_s), ("compute", s.compute_s), ("sync", s.sync_s)):
                if dur > 0:
                    segs.append((a, a + dur, STEP_COLORS[part], 1.0))
                a += dur
        alone = "training loop" if len(m.lanes) <= 1 else f"pid {pid}"
        name = f"rank {rank_of[pid]}" if pid in rank_of else alone
        lanes.append((name, segs))
    workers: dict[int, list[tuple[float, float]]] = defaultdict(list)
    parents: dict[int, int] = {}
    for p in sorted(rec.processes, key=lambda p: p.t):
        if p.role == "worker":
            workers[p.pid].append((p.t, p.cpu_percent))
            parents[p.pid] = p.ppid
    for pid, samples in sorted(workers.items(), key=lambda kv: (rank_of.get(parents[kv[0]], -1), kv[0])):
        segs = []
        for (ta, _), (tb, cpu) in zip(samples, samples[1:], strict=False):
            if tb >= t0 and ta <= t1:
                segs.append((ta, tb, WORKER_BUSY_COLOR, max(0.08, min(1.0, cpu / 100.0))))
        owner = f" (rank {rank_of[parents[pid]]})" if parents.get(pid) in rank_of else ""
        lanes.append((f"worker {pid}{owner}", segs))
    legend = [("data-wait", STEP_COLORS["data-wait"]), ("compute", STEP_COLORS["compute"]),
              ("sync", STEP_COLORS["sync"]), ("worker busy (darker = more CPU)", WORKER_BUSY_COLOR)]
    return svg.gantt("plot-timeline", "Timeline: steps per rank, data workers busy / idle", lanes,
                     x_range=(t0, t1), legend_items=legend)


def _ranks_table(m: Metrics) -> str:
    if not m.ranks:
        return ""
    caption = f'<p class="caption">{escape(sm.ranks_caption(m))}</p>'
    return _table(sm.RANK_HEADER, sm.rank_rows(m), "num") + caption


def _finding_html(i: int, f: Finding) -> str:
    ev = "".join(f"<li>{escape(e)}</li>" for e in f.evidence)
    code = f"<pre><code>{escape(f.fix_code)}</code></pre>" if f.fix_code else ""
    fix = f'<p class="fix"><b>Fix:</b> {escape(f.fix)}</p>' if f.fix else ""
    return (
        f'<article class="finding sev-{escape(f.severity)}" id="finding-{escape(f.id)}">'
        f'<h3><span class="badge">{escape(f.severity)}</span> {i}. {escape(f.title)}'
        f'<span class="conf">{100 * f.confidence:.0f} % confidence</span></h3>'
        f'<p>{escape(f.summary)}</p><ul class="evidence">{ev}</ul>{fix}{code}</article>'
    )


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _steps_table(m: Metrics) -> str:
    rows = sm.step_rows(m)
    if not rows:
        return _note(sm.step_caption(m))
    return (
        _table(
            ["part", "mean ms", "share"],
            [[r.part, f"{r.mean_ms:.1f}", f"{100 * r.share:.0f} %"] for r in rows],
            "num",
        )
        + f'<p class="caption">{escape(sm.step_caption(m))}</p>'
    )


def _process_table(rec: Recording) -> str:
    rows = sm.process_rows(rec)
    if not rows:
        return _note("No process samples were recorded.")
    return _table(
        ["pid", "role", "name", "mean CPU", "peak CPU", "peak RSS", "threads", "alive (s)"],
        [
            [
                str(r.pid),
                r.role,
                r.name,
                f"{r.mean_cpu:.0f} %",
                f"{r.peak_cpu:.0f} %",
                f"{r.peak_rss / 2**20:.0f} MiB",
                str(r.threads),
                f"{r.lifetime_s:.1f}",
            ]
            for r in rows
        ],
        "num",
    )


def _pipelines(rec: Recording) -> str:
    parts = []
    for st in rec.pipeline_stats:
        parts.append(f'<p class="caption">{escape(sm.stats_caption(st))}</p>')
        parts.append(_table(sm.STAGE_HEADER, sm.stage_rows(st), "num"))
        for d in st.decisions:
            parts.append(_note(f"autotune at {d.t} s: {d.why}"))
    return "".join(parts)


def _stacks(rec: Recording) -> str:
    return "".join(
        f"<details open><summary>pid {escape(pid)}</summary><pre>{escape(text)}</pre></details>"
        for pid, text in sorted(rec.stacks.items())
    )


def render_html(rec: Recording, findings: list[Finding], m: Metrics | None = None,
                trials: TryFixes | None = None) -> str:
    """The whole report as one HTML document.

    Args:
        m: `measure(rec)`, when the caller has it already (as `diagnose` took it).
        trials: what `--try-fixes` measured: a table after the verdict.
    """
    m = measure(rec) if m is None else m
    rec = sm.cleaned(rec, m)
    top = findings[0] if findings else None
    verdict = (
        f'<div class="verdict sev-{escape(top.severity)}"><div class="vlabel">Verdict</div>'
        f'<div class="vtitle">{escape(top.title)}</div><p>{escape(top.summary)}</p></div>'
        if top
        else ""
    )
    exc = rec.job_info.get("python_exception")
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>cpuwise doctor: {escape(sm.command_text(rec))}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f'<header><h1>cpuwise doctor</h1><p class="cmd"><code>{escape(sm.command_text(rec))}</code></p>',
        f'<p class="meta">{escape(sm.ending_text(rec))} Started {escape(rec.started_at)}; '
        f"sampled every {rec.interval_s:g} s; {m.usable_cores} usable cores "
        f"({escape(str(rec.host.get('cpu_model', '?')))}). {escape(sm.gpu_text(rec, m))}</p></header>",
        verdict,
        _section("Measured what-ifs (--try-fixes)", trials_html(trials),
                 "Each change run as a fresh process tree for the same steps; samples/s after the warm-up. "
                 "The upper bound replays real batches without the input pipeline: the most any data fix "
                 "can give.") if trials is not None else "",
        _section("Findings", "".join(_finding_html(i, f) for i, f in enumerate(findings, 1))),
        _section(
            "Step time",
            _steps_table(m) + plot_steps(m),
            "Each bar is one interval of the run: the mean step's time blocked waiting for data, computing, "
            "and waiting on the device.",
        ),
        _section(
            "Timeline",
            plot_timeline(rec, m) + _ranks_table(m),
            "One lane per training process (each rank) with its steps coloured by phase, and one per data "
            "worker, darker when busy on the CPU. A long run shows its last stretch of whole steps.",
        ),
    ]
    # A recording merged from several nodes shows each machine on its own.
    views = [(f" on {n}", f"-{i}", node_view(rec, n)) for i, n in enumerate(nodes_of(rec))] or [("", "", rec)]
    for where, suffix, view in views:
        vm = m if view is rec else measure(view)
        parts += [
            _section(f"CPU per core{where}", plot_cpu_cores(view, suffix),
                     "Whole machine, every core (darker = busier)."),
            _section(f"CPU per process{where}", plot_process_cpu(view, vm, suffix) + _process_table(view),
                     "The job's process tree; 1.0 = one full core."),
        ]
    sm_metric = f"SM metric: {rec.gpu.sm_metric}" if rec.gpu.sm_metric else ""
    parts.append(_section("GPU", plot_gpu(rec), sm_metric))
    for where, suffix, view in views:
        parts.append(_section(f"Memory{where}", plot_memory(view, suffix),
                              "RSS counts shared pages in every process that maps them."))
    if rec.pipeline_stats:
        parts.append(_section("cpuwise.data pipeline", _pipelines(rec)))
    if rec.stacks:
        parts.append(_section("Stacks at the end", _stacks(rec), "Innermost call first."))
    if exc:
        parts.append(_section("Python exception", f"<pre>{escape(str(exc))}</pre>"))
    if rec.notes:
        parts.append(
            _section("Notes", "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in rec.notes) + "</ul>")
        )
    parts.append("<footer>Written by cpuwise doctor. Self-contained: no scripts, no network.</footer>")
    parts.append("</main></body></html>")
    return "\n".join(parts)
