"""The HTML report: self-contained, escaped, and every plot has something drawn."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from cpuwise.diagnose import diagnose
from cpuwise.diagnose.metrics import measure
from cpuwise.report.html import render_html, step_intervals
from cpuwise.testing.recordings import fake_recording

PLOTS = ("plot-steps", "plot-cpu-cores", "plot-process-cpu", "plot-memory")


class _Svgs(HTMLParser):
    """Counts drawn elements inside each <svg class="plot"> and collects external references."""

    def __init__(self) -> None:
        super().__init__()
        self.drawn: dict[str, int] = {}
        self.current: str | None = None
        self.external: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if a.get(key):
                self.external.append(str(a[key]))
        if tag == "svg" and "plot" in (a.get("class") or ""):
            self.current = str(a.get("id"))
            self.drawn[self.current] = 0
        elif self.current and (
            (tag == "rect" and float(a.get("height") or 0) > 0 and float(a.get("width") or 0) > 0)
            or (tag == "path" and len(a.get("d") or "") > 10)
            or (tag == "polyline" and len((a.get("points") or "").split()) >= 2)
        ):
            self.drawn[self.current] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.current = None


def parse(html: str) -> _Svgs:
    p = _Svgs()
    p.feed(html)
    return p


def test_every_plot_has_drawn_elements_and_nothing_external() -> None:
    rec = fake_recording("input_bound", gpu=True)
    p = parse(render_html(rec, diagnose(rec)))
    for plot in (*PLOTS, "plot-gpu"):
        assert p.drawn.get(plot, 0) > 0, plot
    intervals = step_intervals(measure(rec))
    assert len(intervals) >= 20  # the 6 s of steps in 0.25 s intervals
    assert p.drawn["plot-steps"] >= 2 * len(intervals)  # a data-wait and a compute rect per interval
    assert p.scripts == 0 and p.external == []


def test_findings_come_first_then_plots() -> None:
    rec = fake_recording("input_bound")
    html = render_html(rec, diagnose(rec))
    assert html.index('id="finding-input_bound_cpu_saturated"') < html.index('id="plot-steps"')
    assert 'class="verdict sev-high"' in html
    assert "GPU metrics unavailable: nvidia-ml-py is installed" in html
    assert 'id="plot-gpu"' not in html


def test_text_from_the_recording_is_escaped() -> None:
    rec = fake_recording("hung")
    rec.command = ["python", "<script>alert(1)</script>.py"]
    rec.stacks = {"1000": "Thread <b>main</b>\n    wait (x.py:1)"}
    rec.notes = ["a & b <i>"]
    html = render_html(rec, diagnose(rec))
    assert "<script>" not in html and "<b>main</b>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "Thread &lt;b&gt;main&lt;/b&gt;" in html


@pytest.mark.parametrize("preset", ["hung", "pipeline", "no_steps", "crashed", "swap"])
def test_sections_per_situation(preset: str) -> None:
    rec = fake_recording(preset)
    html = render_html(rec, diagnose(rec))
    if preset == "hung":
        assert "Stacks at the end" in html and "gomp_team_barrier_wait_end" in html
    if preset == "pipeline":
        assert "cpuwise.data pipeline" in html and "decode_crop" in html
    if preset == "no_steps":
        assert "Step split unavailable" in html and 'id="plot-steps"' not in html
    if preset == "crashed":
        assert "Python exception" in html and "RuntimeError: mat1 and mat2" in html
    if preset == "swap":
        assert "swap used" in html
    assert parse(html).drawn["plot-cpu-cores"] > 0


def test_long_runs_are_binned() -> None:
    rec = fake_recording("compute", steps=1200, interval_s=0.02)
    html = render_html(rec, diagnose(rec))
    p = parse(html)
    assert p.drawn["plot-steps"] <= 3 * 400 + 50  # 1200 steps binned into 400 bars
    assert len(html) < 3_000_000
    assert re.search(r'id="plot-process-cpu"', html)
