"""Does `cpuwise doctor` stay small and quick however many steps a job makes? (issue 14, item 10)

A job that steps as fast as it can (a TensorDataset through a DataLoader, one sample per step) runs
under the real `cpuwise doctor` command for --seconds (default 600: ten minutes, tens of millions of
steps). Measured: the doctor's peak RSS (polled, and the kernel's high-water mark it records itself),
the time from the job's last step until every report (terminal, HTML, JSON, TensorBoard) is written,
and whether the recorded step total equals the job's own count.

    python benchmarks/doctor_scale.py                  # 10 minutes; run it on a quiet machine
    python benchmarks/doctor_scale.py --seconds 60     # what the test suite checks

Writes benchmarks/results/doctor_scale.json. Targets: < 300 MB RSS, reports < 30 s after the job's end.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cpuwise.host import host_facts
from cpuwise.testing.scale import measure_scale

RESULTS = Path(__file__).parent / "results" / "doctor_scale.json"
RSS_LIMIT = 300 * 2**20
REPORT_LIMIT_S = 30.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cpuwise-scale-") as tmp:
        r = measure_scale(args.seconds, Path(tmp), rss_limit_bytes=RSS_LIMIT, report_limit_s=REPORT_LIMIT_S)
    ok = (r.killed is None and r.exit_code == 0 and r.steps_recorded == r.steps_job
          and r.doctor_peak_rss_bytes < RSS_LIMIT and r.report_s is not None and r.report_s < REPORT_LIMIT_S
          and all(r.reports.values()))
    result = {
        "benchmark": "doctor_scale",
        **r.to_dict(),
        "targets": {"peak_rss_bytes": RSS_LIMIT, "report_s": REPORT_LIMIT_S},
        "passed": ok,
        "host": host_facts().to_dict(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(f"{r.steps_job} steps in {args.seconds:g} s ({r.steps_per_s:.0f}/s), {r.steps_recorded} recorded; "
          f"doctor peak RSS {r.doctor_peak_rss_bytes / 2**20:.0f} MiB (target < 300); reports "
          f"{r.report_s if r.report_s is None else round(r.report_s, 1)} s after the job's end (target < 30)"
          + (f"; ended early: {r.killed}" if r.killed else ""))
    print(f"{'PASS' if ok else 'FAIL'}; wrote {RESULTS}")


if __name__ == "__main__":
    main()
