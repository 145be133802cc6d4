"""Small inline-SVG charts for the HTML report: no JavaScript, no network, text escaped.

Each chart is an `<svg class="plot" id=...>` string with axes, grid, a legend and <title> tooltips.
Long series are averaged into at most MAX_POINTS bins so a long run stays a small file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

W, H = 1000, 260
ML, MR, MT, MB = 64, 20, 34, 36
MAX_POINTS = 400
Layer = tuple[str, str, list[float]]  # (label, colour, one value per x) of a stacked chart


@dataclass
class Series:
    """One line of a line chart: (x, y) points."""

    label: str
    color: str
    points: list[tuple[float, float]]
    dashed: bool = False


def bins(n: int, max_points: int = MAX_POINTS) -> list[range] | None:
    """Consecutive index ranges that split `n` points into `max_points` bins; None when `n` fits."""
    if n <= max_points:
        return None
    size = n / max_points
    return [range(int(b * size), max(int(b * size) + 1, int((b + 1) * size))) for b in range(max_points)]


def bin_means(values: Sequence[float], groups: list[range]) -> list[float]:
    """The mean of `values` over each index range of `groups`."""
    return [sum(values[i] for i in g) / len(g) for g in groups]


def bin_points(
    points: Sequence[tuple[float, float]], max_points: int = MAX_POINTS
) -> list[tuple[float, float]]:
    """Average consecutive points into at most `max_points` bins (keeps the shape, bounds the size)."""
    pts = sorted(points)
    groups = bins(len(pts), max_points)
    if groups is None:
        return list(pts)
    xs, ys = [x for x, _ in pts], [y for _, y in pts]
    return list(zip(bin_means(xs, groups), bin_means(ys, groups), strict=True))


def nice_step(span: float, max_ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5, 5 x 10^k) giving at most `max_ticks` intervals over `span`."""
    if span <= 0:
        return 1.0
    raw = span / max_ticks
    k = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * k >= raw:
            return m * k
    return 10 * k


def nice_max(v: float) -> float:
    """A round upper bound >= v for the y axis: a whole number of nice_step ticks."""
    if v <= 0:
        return 1.0
    step = nice_step(v, 4)
    return math.ceil(v / step - 1e-9) * step


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.3g}"


class Frame:
    """Maps data to pixels and draws the axes."""

    def __init__(self, x0: float, x1: float, y1: float, width: int = W, height: int = H,
                 ml: int = ML) -> None:
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + 1.0
        self.y1 = y1 if y1 > 0 else 1.0
        self.w, self.h, self.ml = width, height, ml

    def x(self, v: float) -> float:
        return self.ml + (v - self.x0) / (self.x1 - self.x0) * (self.w - self.ml - MR)

    def y(self, v: float) -> float:
        return self.h - MB - min(max(v, 0.0), self.y1) / self.y1 * (self.h - MT - MB)

    def axes(self, x_label: str, y_label: str, integer_x: bool = False) -> list[str]:
        out = self.y_ticks() + self.x_ticks(integer_x)
        out.append(f'<line class="axis" x1="{ML}" y1="{self.h - MB}" x2="{self.w - MR}" y2="{self.h - MB}"/>')
        out.append(f'<line class="axis" x1="{ML}" y1="{MT}" x2="{ML}" y2="{self.h - MB}"/>')
        out.append(
            f'<text class="label" x="{self.w - MR}" y="{self.h - 4}" text-anchor="end">'
            f"{escape(x_label)}</text>"
        )
        out.append(
            f'<text class="label" x="14" y="{(self.h - MB + MT) / 2:.0f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {(self.h - MB + MT) / 2:.0f})">{escape(y_label)}</text>'
        )
        return out

    def y_ticks(self) -> list[str]:
        out, step = [], nice_step(self.y1, 4)
        v = 0.0
        while v <= self.y1 + 1e-9:
            yy = self.y(v)
            out.append(f'<line class="grid" x1="{ML}" y1="{yy:.1f}" x2="{self.w - MR}" y2="{yy:.1f}"/>')
            out.append(f'<text class="tick" x="{ML - 6}" y="{yy + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
            v += step
        return out

    def x_ticks(self, integer: bool = False) -> list[str]:
        out, step = [], nice_step(self.x1 - self.x0, 8)
        if integer:
            step = max(1.0, round(step))
        v = math.ceil(self.x0 / step - 1e-9) * step
        while v <= self.x1 + 1e-9:
            out.append(
                f'<text class="tick" x="{self.x(v):.1f}" y="{self.h - MB + 16}" text-anchor="middle">'
                f"{_fmt(v)}</text>"
            )
            v += step
        return out


def legend(items: Sequence[tuple[str, str]], width: int = W) -> list[str]:
    """A row of (label, colour) swatches above the plot."""
    out, x = [], ML
    for label, color in items:
        out.append(f'<rect x="{x}" y="10" width="12" height="12" rx="2" fill="{color}"/>')
        out.append(f'<text class="legend" x="{x + 17}" y="20">{escape(label)}</text>')
        x += 30 + 7 * len(label)
    return out


def _svg(plot_id: str, body: list[str], title: str, width: int = W, height: int = H) -> str:
    return (
        f'<svg class="plot" id="{escape(plot_id)}" viewBox="0 0 {width} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def line_chart(
    plot_id: str,
    title: str,
    series: list[Series],
    *,
    x_label: str,
    y_label: str,
    y_max: float | None = None,
    x_range: tuple[float, float] | None = None,
) -> str:
    """Lines over time; `y_max` fixes the y axis (e.g. 100 for percentages)."""
    binned = [(s, bin_points(s.points)) for s in series if s.points]
    xs = [x for _, pts in binned for x, _ in pts]
    x0, x1 = x_range or ((min(xs), max(xs)) if xs else (0.0, 1.0))
    top = y_max or nice_max(max((y for _, pts in binned for _, y in pts), default=1.0) * 1.05)
    f = Frame(x0, x1, top)
    body = f.axes(x_label, y_label)
    for s, pts in binned:
        coords = " ".join(f"{f.x(x):.1f},{f.y(y):.1f}" for x, y in pts)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        body.append(
            f'<polyline class="series" fill="none" stroke="{s.color}" stroke-width="2"{dash} '
            f'points="{coords}">'
            f"<title>{escape(s.label)}</title></polyline>"
        )
    body += legend([(s.label, s.color) for s, _ in binned])
    return _svg(plot_id, body, title)


def stacked_area(plot_id: str, title: str, xs: list[float], layers: list[Layer], *, x_label: str,
                 y_label: str, limit: tuple[str, float] | None = None) -> str:
    """Layers stacked bottom-up at shared x positions; `limit` draws a dashed reference line.

    More than MAX_POINTS positions are thinned to the first of each bin (an area keeps its shape).
    """
    groups = bins(len(xs))
    if groups is not None:
        xs = [xs[g[0]] for g in groups]
        layers = [(n, c, [v[g[0]] for g in groups]) for n, c, v in layers]
    totals = [sum(v[i] for _, _, v in layers) for i in range(len(xs))]
    top = nice_max(max(totals + [limit[1] if limit else 0.0], default=1.0) * 1.05)
    f = Frame(xs[0] if xs else 0.0, xs[-1] if xs else 1.0, top)
    body = f.axes(x_label, y_label)
    base = [0.0] * len(xs)
    for name, color, vals in layers:
        upper = [b + v for b, v in zip(base, vals, strict=True)]
        fwd = [f"{f.x(x):.1f},{f.y(u):.1f}" for x, u in zip(xs, upper, strict=True)]
        back = [f"{f.x(x):.1f},{f.y(b):.1f}" for x, b in reversed(list(zip(xs, base, strict=True)))]
        if fwd:
            body.append(
                f'<path class="series" d="M{" L".join(fwd + back)} Z" fill="{color}" fill-opacity="0.85" '
                f'stroke="{color}"><title>{escape(name)}</title></path>'
            )
        base = upper
    items = [(n, c) for n, c, _ in layers]
    if limit and xs:
        yy = f.y(limit[1])
        body.append(
            f'<line class="limit" x1="{ML}" y1="{yy:.1f}" x2="{f.w - MR}" y2="{yy:.1f}" stroke="#333" '
            f'stroke-dasharray="6 4"><title>{escape(limit[0])}</title></line>'
        )
        items.append((limit[0], "#333"))
    body += legend(items)
    return _svg(plot_id, body, title)


def stacked_bars(plot_id: str, title: str, xs: list[float], layers: list[Layer], *, x_label: str,
                 y_label: str, integer_x: bool = True) -> str:
    """One bar per x (e.g. per step or per interval), split into layers; more than MAX_POINTS bars are
    averaged."""
    groups = bins(len(xs))
    if groups is not None:
        xs = bin_means(xs, groups)
        layers = [(nm, c, bin_means(v, groups)) for nm, c, v in layers]
    n = len(xs)
    totals = [sum(v[i] for _, _, v in layers) for i in range(n)]
    ordered = sorted(totals)
    peak = max(totals, default=1.0)
    if n >= 10 and peak > 3 * ordered[n // 2]:
        # A few slow steps (warm-up, a checkpoint) would flatten the rest: clip them and mark them.
        peak = ordered[int(0.95 * (n - 1))] * 1.3
    top = nice_max(peak * 1.05)
    pad = 0.5 if integer_x or n < 2 else (xs[-1] - xs[0]) / (n - 1) / 2
    f = Frame(xs[0] - pad if xs else 0.0, xs[-1] + pad if xs else 1.0, top)
    body = f.axes(x_label, y_label, integer_x=integer_x)
    bw = max(1.0, (f.w - ML - MR) / max(1, n) * 0.8)
    for i, x in enumerate(xs):
        if totals[i] > top:
            body.append(
                f'<path class="clipped" d="M{f.x(x) - 5:.1f},{MT - 2} L{f.x(x) + 5:.1f},{MT - 2} '
                f'L{f.x(x):.1f},{MT - 9} Z" '
                f'fill="#1f2933"><title>{x:g}: {totals[i]:.1f} (clipped)</title></path>'
            )
        base = 0.0
        for name, color, vals in layers:
            v = vals[i]
            if v > 0:
                y_top, y_bot = f.y(base + v), f.y(base)
                body.append(
                    f'<rect x="{f.x(x) - bw / 2:.1f}" y="{y_top:.1f}" width="{bw:.1f}" '
                    f'height="{max(0.5, y_bot - y_top):.1f}" fill="{color}"><title>{x:g}: {escape(name)} '
                    f"{v:.1f}</title></rect>"
                )
            base += v
    body += legend([(nm, c) for nm, c, _ in layers])
    return _svg(plot_id, body, title)


def heat_color(v: float) -> str:
    """0..100 -> pale to deep blue-violet (a sequential scale readable in print)."""
    t = max(0.0, min(1.0, v / 100.0))
    stops = [(0.0, (240, 244, 250)), (0.5, (99, 142, 214)), (1.0, (46, 16, 101))]
    for (a, ca), (b, cb) in zip(stops, stops[1:], strict=False):
        if t <= b:
            u = (t - a) / (b - a)
            r, g, bl = (round(ca[k] + (cb[k] - ca[k]) * u) for k in range(3))
            return f"#{r:02x}{g:02x}{bl:02x}"
    return "#2e1065"


def heatmap(
    plot_id: str, title: str, xs: list[float], rows: list[tuple[str, list[float]]], *, x_label: str
) -> str:
    """Rows (e.g. cores) by time, each cell coloured by 0-100 %."""
    groups = bins(len(xs))
    if groups is not None:
        xs = [xs[g[0]] for g in groups]
        rows = [(nm, bin_means(v, groups)) for nm, v in rows]
    height = max(120, min(640, MT + MB + 18 * len(rows)))
    f = Frame(xs[0] if xs else 0.0, xs[-1] if xs else 1.0, 1.0, height=height)
    body = []
    row_h = (height - MT - MB) / max(1, len(rows))
    for r, (name, vals) in enumerate(rows):
        y = MT + r * row_h
        if len(rows) <= 32 or r % max(1, len(rows) // 16) == 0:
            body.append(
                f'<text class="tick" x="{ML - 6}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">'
                f"{escape(name)}</text>"
            )
        for i, x in enumerate(xs):
            x_next = xs[i + 1] if i + 1 < len(xs) else x + (xs[-1] - xs[0]) / max(1, len(xs) - 1)
            body.append(
                f'<rect x="{f.x(x):.1f}" y="{y:.1f}" width="{max(0.5, f.x(x_next) - f.x(x)):.1f}" '
                f'height="{max(0.5, row_h - 1):.1f}" fill="{heat_color(vals[i])}"><title>{escape(name)} '
                f"t={x:.1f}s {vals[i]:.0f} %</title></rect>"
            )
    body += f.x_ticks()
    body.append(
        f'<text class="label" x="{W - MR}" y="{height - 4}" text-anchor="end">{escape(x_label)}</text>'
    )
    body += [
        f'<rect x="{ML + 40 * k}" y="10" width="40" height="12" fill="{heat_color(25 * k)}"/>'
        for k in range(5)
    ]
    body.append(f'<text class="legend" x="{ML + 206}" y="20">0 % → 100 % busy</text>')
    return _svg(plot_id, body, title, height=height)


Segment = tuple[float, float, str, float]  # (start, end, colour, opacity) of a Gantt bar


def gantt(plot_id: str, title: str, lanes: list[tuple[str, list[Segment]]], *, x_range: tuple[float, float],
          legend_items: Sequence[tuple[str, str]], x_label: str = "time (s)") -> str:
    """A Gantt-style timeline: one row per lane (a rank, a data worker), its segments as coloured bars."""
    row_h, ml = 22, 150  # room for lane names such as "worker 12345 (rank 3)"
    height = MT + MB + row_h * max(1, len(lanes))
    f = Frame(x_range[0], x_range[1], 1.0, height=height, ml=ml)
    body: list[str] = []
    for r, (name, segments) in enumerate(lanes):
        y = MT + r * row_h
        body.append(f'<text class="tick" x="{ml - 6}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">'
                    f"{escape(name)}</text>")
        body.append(f'<line class="grid" x1="{ml}" y1="{y + row_h:.1f}" x2="{W - MR}" y2="{y + row_h:.1f}"/>')
        for t0, t1, color, opacity in segments:
            if t1 < x_range[0] or t0 > x_range[1]:
                continue
            x0, x1 = f.x(max(t0, x_range[0])), f.x(min(t1, x_range[1]))
            op = f' fill-opacity="{opacity:.2f}"' if opacity < 1 else ""
            body.append(f'<rect x="{x0:.1f}" y="{y + 3:.1f}" width="{max(0.4, x1 - x0):.1f}" '
                        f'height="{row_h - 6}" fill="{color}"{op}/>')
    body += f.x_ticks()
    body.append(
        f'<text class="label" x="{W - MR}" y="{height - 4}" text-anchor="end">{escape(x_label)}</text>'
    )
    body += legend(legend_items)
    return _svg(plot_id, body, title, height=height)
