"""`cpuwise demo`: the generated data set, and the doctor's verdict on the stock job (input-bound)."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from cpuwise.cli import demo as demo_cli
from cpuwise.demo.images import CLASSES, make_dataset
from cpuwise.demo.run import run_demo
from cpuwise.demo.train import random_resized_crop_box

INPUT_BOUND = {"input_bound", "input_bound_cpu_saturated", "too_few_workers", "io_bound"}


def test_dataset_is_real_jpegs_in_class_folders_and_is_reused(tmp_path: Path) -> None:
    from PIL import Image

    root = make_dataset(tmp_path / "imgs", 8)
    files = sorted(root.rglob("*.jpg"))
    assert len(files) == 8 and {f.parent.name for f in files} == set(CLASSES)
    with Image.open(files[0]) as im:
        assert im.format == "JPEG" and im.size == (500, 375)
    assert files[0].stat().st_size > 10_000  # noisy photo-like content, not a flat colour
    mtime = files[0].stat().st_mtime_ns
    make_dataset(root, 8)
    assert files[0].stat().st_mtime_ns == mtime


@pytest.mark.parametrize("seed", range(20))
def test_random_resized_crop_box_stays_inside_the_image(seed: int) -> None:
    left, top, w, h = random_resized_crop_box(500, 375, random.Random(seed))
    assert 0 <= left and 0 <= top and 0 < w and 0 < h and left + w <= 500 and top + h <= 375


def test_too_few_images_is_refused(tmp_path: Path) -> None:
    app = typer.Typer()
    demo_cli.register(app)

    @app.callback()
    def _root() -> None:
        pass

    r = CliRunner().invoke(app, ["demo", "--images", "10", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--images must be >= 64" in r.output


@pytest.mark.slow
def test_demo_stock_job_is_diagnosed_input_bound(tmp_path: Path) -> None:
    buf = io.StringIO()
    code = run_demo(tmp_path, 64, True, Console(file=buf, width=100), after=False)
    text = buf.getvalue()
    assert code == 0, text
    assert (tmp_path / "before" / "report.html").is_file()
    import json

    from cpuwise._schema import Recording
    from cpuwise.diagnose.findings import Finding
    from cpuwise.testing.verdicts import accepted

    report = json.loads((tmp_path / "before" / "report.json").read_text())
    findings = [Finding.from_dict(f) for f in report["findings"]]
    ok, why = accepted(Recording.from_dict(report["recording"]), findings, expected=INPUT_BOUND)
    assert ok, why
    assert "Before / after" in text
