"""Open a rendered report in a real headless browser (Debian's chromium) and check the plots show."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cpuwise.diagnose import diagnose
from cpuwise.report import write_reports
from cpuwise.testing.recordings import fake_recording

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DATA_WAIT = (0xE4, 0x57, 0x2E)  # STEP_COLORS["data-wait"]: the step bars
HEAT_HOT = (0x2E, 0x10, 0x65)  # svg.heat_color(100): a saturated core in the heatmap


def _count_near(pixels: np.ndarray, color: tuple[int, int, int], tol: int = 24) -> int:
    return int((np.abs(pixels.astype(np.int16) - np.array(color, dtype=np.int16)) <= tol).all(axis=-1).sum())


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    from PIL import Image

    rec = fake_recording("input_bound")
    paths = write_reports(rec, diagnose(rec), tmp_path / "report")
    shot = tmp_path / "report.png"
    cmd = [
        str(CHROMIUM),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,2400",
        paths["html"].resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=90)
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape == (2400, 1280, 3)
    assert img.mean(axis=-1).std() > 10, "the screenshot is blank"

    # The plots region (below the findings) holds the step bars and the per-core heatmap.
    plots = img[700:]
    bars = _count_near(plots, DATA_WAIT)
    heat = _count_near(plots, HEAT_HOT)
    assert bars > 2000, f"step-time bars not drawn ({bars} data-wait pixels)"
    assert heat > 2000, f"CPU heatmap not drawn ({heat} saturated-core pixels)"
    # And the lower part of the page is not empty either (process CPU / memory plots).
    assert img[1600:].mean(axis=-1).std() > 10


COMPUTE = (0x2E, 0x86, 0xAB)  # STEP_COLORS["compute"]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_timeline_renders_a_lane_per_rank_and_per_worker_in_headless_chromium(tmp_path: Path) -> None:
    from PIL import Image

    from cpuwise.diagnose.metrics import measure
    from cpuwise.report.html import plot_timeline
    from cpuwise.report.style import CSS

    rec = fake_recording("straggler")  # 2 ranks in lock-step, one worker each
    svg_text = plot_timeline(rec, measure(rec))
    assert svg_text.count("rank 0") == 2 and "rank 1" in svg_text  # lane names (rank lanes, worker owners)
    page = tmp_path / "timeline.html"
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{CSS}</style></head>"
                    f"<body><main>{svg_text}</main></body></html>")
    shot = tmp_path / "timeline.png"
    subprocess.run([str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1280,700", page.resolve().as_uri()],
                   check=True, capture_output=True, timeout=90)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    wait, compute = _count_near(img, DATA_WAIT), _count_near(img, COMPUTE)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    teal = int(((g - r > 40) & (b - r > 30) & (r < 200)).sum())  # worker lanes, shaded by their CPU
    assert wait > 1500 and compute > 1500, f"rank lanes not drawn ({wait} data-wait, {compute} compute px)"
    assert teal > 1500, f"worker lanes not drawn ({teal} teal pixels)"
