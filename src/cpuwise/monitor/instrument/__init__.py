"""Zero-code-change instrumentation of Python jobs run under `cpuwise doctor`.

The doctor puts `cpuwise/_boot/` first on the job's PYTHONPATH; its `sitecustomize.py` calls
`hooks.install()` in every Python process of the job (workers included), and attaches the framework
callbacks of `cpuwise.integrations`. Only the standard library
and `cpuwise._channel` load at start-up; torch is patched when (and if) the job imports it.
"""

from __future__ import annotations

from pathlib import Path

BOOT_DIR = Path(__file__).resolve().parents[2] / "_boot"  # the job-side composition root
# The folder that holds the `cpuwise` package, for job interpreters that don't have it installed.
PACKAGE_ROOT = Path(__file__).resolve().parents[3]
STACK_DIR_ENV = "CPUWISE_STACK_DIR"
SRC_ENV = "CPUWISE_SRC"  # where `cpuwise` lives, for interpreters that don't have it installed
