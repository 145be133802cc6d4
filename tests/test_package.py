"""The public surface and the cheap import."""

from __future__ import annotations

import subprocess
import sys

import cpuwise
from cpuwise import errors


def test_all_is_complete_and_importable() -> None:
    for name in cpuwise.__all__:
        assert getattr(cpuwise, name) is not None
    public_errors = {n for n in dir(errors) if n.endswith("Error") and not n.startswith("_")}
    assert public_errors <= set(cpuwise.__all__)


def test_import_is_cheap() -> None:
    code = (
        "import sys, cpuwise, cpuwise.data, cpuwise.optimize, cpuwise.monitor\n"
        "import cpuwise.diagnose, cpuwise.report, cpuwise.data.image\n"
        "heavy = ('torch', 'onnxruntime', 'onnx', 'cv2', 'pandas', 'pynvml', 'pyarrow', 'simplejpeg')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_missing_extra_names_the_extra() -> None:
    from cpuwise._optional import require

    try:
        require("definitely_not_a_module_xyz", extra="optimize")
    except cpuwise.MissingExtraError as exc:
        assert "cpuwise[optimize]" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected MissingExtraError")


def test_python_dash_m_cpuwise_is_the_console_script() -> None:
    via_module = subprocess.run([sys.executable, "-m", "cpuwise", "--help"], capture_output=True, text=True)
    assert via_module.returncode == 0, via_module.stderr
    for command in ("doctor", "optimize", "info", "bench", "demo"):
        assert command in via_module.stdout
    bad = subprocess.run([sys.executable, "-m", "cpuwise", "no-such-command"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no-such-command" in bad.stderr
