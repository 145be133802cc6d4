"""Soak: cpuwise.data under seeded faults for minutes; every item exactly once, nothing left, memory flat.

    PYTHONPATH=src python benchmarks/soak.py [--minutes 10] [--images 300] [--seed 14] [--out PATH.json]

The same harness as tests/data/test_fault_injection.py (cpuwise.testing.faults), run for as many
epochs as fit in --minutes: a shuffled pipeline decoding real JPEGs (some corrupt) in worker
processes, with worker kills, interrupts, resumes into fresh pipelines and mid-epoch closes at item
counts drawn from the seed; then a few epochs while a disk cache records. After every epoch it
records the RSS of this process and of this process with its workers.

Memory is flat when, after the first epochs (warm-up: pools, caches, the decoder calibration), the
mean RSS of the last quarter of the epochs exceeds the mean of the first quarter by no more than
MAX_GROWTH_MB + MAX_GROWTH_FRACTION of it; the slope (MiB per 100 epochs, least squares) is reported
too. Exit code 0 when every check holds. Writes JSON (default benchmarks/results/soak.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MAX_GROWTH_MB = 24.0
MAX_GROWTH_FRACTION = 0.10
WARMUP_EPOCHS = 3


def memory_verdict(rss: list[float]) -> dict[str, Any]:
    """Is the series flat after warm-up? (first vs last quarter, and the least-squares slope)."""
    tail = rss[WARMUP_EPOCHS:]
    if len(tail) < 4:
        return {"flat": None, "why": f"{len(tail)} epochs after warm-up: too few to judge (run longer)"}
    q = max(1, len(tail) // 4)
    first, last = float(np.mean(tail[:q])), float(np.mean(tail[-q:]))
    slope = float(np.polyfit(np.arange(len(tail)), tail, 1)[0]) * 100
    allowed = MAX_GROWTH_MB + MAX_GROWTH_FRACTION * first
    return {"flat": last - first <= allowed, "first_quarter_mb": round(first, 1),
            "last_quarter_mb": round(last, 1), "growth_mb": round(last - first, 1),
            "allowed_growth_mb": round(allowed, 1), "slope_mb_per_100_epochs": round(slope, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--out", default="benchmarks/results/soak.json")
    args = ap.parse_args()

    from cpuwise.host import host_facts
    from cpuwise.testing.faults import make_files, run_faults

    work = Path(tempfile.mkdtemp(prefix="cpuwise-soak-"))
    try:
        files = make_files(work / "data", n=args.images, seed=args.seed)
        t0 = time.monotonic()

        def progress(report: Any) -> None:
            if report.epochs % 10 == 0:
                print(f"  epoch {report.epochs}: {report.items} items, events {dict(report.events)}, "
                      f"RSS {report.rss_main_mb[-1]:.0f} MiB (with workers {report.rss_mb[-1]:.0f})",
                      flush=True)

        print(f"soak: {args.minutes:g} min, {args.images} images ({len(files.corrupt)} corrupt), "
              f"{args.workers} workers, seed {args.seed}", flush=True)
        main_run = run_faults(files, epochs=None, seed=args.seed, workers=args.workers,
                              until=t0 + 60.0 * args.minutes, on_epoch=progress)
        cache_run = run_faults(files, epochs=3, seed=args.seed + 1, workers=args.workers,
                               cache_dir=work / "cache")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mem = memory_verdict(main_run.rss_main_mb)
    mem_total = memory_verdict(main_run.rss_mb)
    problems = main_run.problems + cache_run.problems
    if mem["flat"] is False:
        problems.append(f"memory grew: {mem}")
    if mem_total["flat"] is False:
        problems.append(f"memory with workers grew: {mem_total}")
    result = {
        "benchmark": "soak", "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": host_facts().to_dict(),
        "args": vars(args), "ok": not problems, "problems": problems,
        "memory": mem, "memory_with_workers": mem_total,
        "main": main_run.to_dict(), "cache": cache_run.to_dict(),
        "items_per_s": round(main_run.items / max(main_run.seconds, 1e-9), 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"soak: {main_run.epochs} epochs, {main_run.items} items, events {dict(main_run.events)}, "
          f"{len(main_run.worker_pids)} workers started; memory {mem}")
    print(f"soak: {'OK' if not problems else 'FAILED'} -> {out}")
    for p in problems:
        print("  problem:", p)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
