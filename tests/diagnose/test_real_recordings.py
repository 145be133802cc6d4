"""The rules on real recordings taken by `cpuwise doctor`.

CPU ones: tests/e2e/scripts on the 2-core CI kind of machine while ~7 other jobs shared it (so the
machine is busier than the job, the sampler sometimes falls behind, and neighbours cause preemptions).
GPU ones: small scripts on an H100 with 16 cores (NVML + GPM SM activity), trimmed to a few seconds of
training to keep the files small.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from cpuwise._schema import Recording
from cpuwise.diagnose import diagnose, verdict
from cpuwise.diagnose.metrics import measure, sanitize

HERE = Path(__file__).parent / "recordings"


def load(name: str) -> Recording:
    with gzip.open(HERE / f"{name}.json.gz", "rt") as fh:
        return Recording.from_dict(json.load(fh))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # 1 worker, slow numpy "augmentations", while other jobs took 1.0 of the 2 cores: the job competes
        # for the CPU (and is input-bound under it, see below).
        ("input_bound", "cpu_contention"),
        # torch matmuls in the loop, no DataLoader, on a machine where neighbours took 1.6 of the 2 cores:
        # the job (runnable all the time) got 0.4 cores. Contention, and nothing input-bound.
        ("compute_bound", "cpu_contention"),
        ("oversubscribed", "oversubscribed"),  # 4 workers x 8 torch threads on 2 cores
        ("hang", "hung"),  # cpuwise.watch() steps, then a deadlock; --hang-timeout 3, py-spy stacks
        ("crash", "crashed"),  # ValueError at step 3
        # H100 + 16 cores: a tiny MLP with batch 32 from a TensorDataset through a fresh 2-worker
        # DataLoader every epoch: 2.7 ms steps, 43 % waiting on the loader's per-batch hand-off.
        ("gpu_tiny_steps", "input_bound"),
        # H100: cpuwise.watch() around a 256-wide MLP, data already on the GPU: launch-bound, SMs ~idle.
        ("gpu_underused", "gpu_underused"),
        # H100: an 8192-wide MLP with loss.item() every step: the host waits ~half of each step.
        ("gpu_sync_stalls", "sync_stalls"),
    ],
)
def test_real_recordings(name: str, expected: str) -> None:
    findings = diagnose(load(name))
    assert verdict(findings) == expected, [(f.id, f.severity) for f in findings]


def test_sampler_glitches_are_dropped() -> None:
    # This recording has samples taken 1.6 ms apart after a 0.3 s stall: 0 % machines and workers
    # at 1875 % of a core. They must not reach the rules or the plots.
    rec = load("oversubscribed")
    clean = sanitize(rec)
    assert len(clean.system) < len(rec.system)
    assert max(p.cpu_percent for p in rec.processes) > 1000
    assert max(p.cpu_percent for p in clean.processes) <= 200
    m = measure(rec)
    assert m.job_cpu_cores <= 2.2


def test_input_bound_names_the_neighbours() -> None:
    findings = diagnose(load("input_bound"))
    f = next(f for f in findings if f.id == "input_bound_cpu_saturated")
    assert any("other processes on the machine" in e for e in f.evidence)
    assert findings[0].id == "cpu_contention" and "1.0 of the 2 usable cores" in findings[0].summary


def test_hang_points_at_the_frame() -> None:
    f = diagnose(load("hang"))[0]
    assert "with its CPU idle" in f.summary
    assert any(e.endswith("<module> (hang.py:14)") for e in f.evidence)


def test_crash_quotes_the_exception() -> None:
    f = diagnose(load("crash"))[0]
    assert f.summary == "The job crashed (exit code 1): ValueError: cpuwise-e2e: boom at step 3"


def test_gpu_recording_quotes_the_idle_gpu_and_the_tiny_steps() -> None:
    findings = diagnose(load("gpu_tiny_steps"))
    f = findings[0]
    assert any(e.startswith("GPU utilisation 4 %, SM activity 0 %") for e in f.evidence)
    assert any("steps take only" in e for e in f.evidence) and "persistent_workers=True" in f.fix
    # A fresh DataLoader each epoch forks new workers: 10 worker pids reported pools, 2 ran at once.
    over = next(x for x in findings if x.id == "oversubscribed")
    assert over.severity == "info" and "2 worker(s) x 16 thread(s)" in over.evidence[0]
