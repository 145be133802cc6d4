"""A window shuffle of an iterable source read through prefetch: the cost of keeping the state current.

    PYTHONPATH=src python benchmarks/window_shuffle_state.py [--items 60000] [--out PATH.json]

`from_iterable(range(N)).shuffle(buffer_size=B)` with and without `.prefetch(4)`, best of three runs.
A prefetch stage keeps the state after each item it reads ahead, so a window shuffle whose state
copied its buffer paid O(B) per item (issue 14: 9x slower with prefetch). Run it at two commits
(before and after the fix) on one machine to compare; numbers across machines do not compare.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def rate(ds: object, n: int) -> float:
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        count = sum(1 for _ in ds)  # type: ignore[attr-defined]
        best = max(best, count / (time.perf_counter() - t0))
        assert count == n
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=60_000)
    ap.add_argument("--out", default="benchmarks/results/window_shuffle_state.json")
    args = ap.parse_args()
    import cpuwise.data as cd
    from cpuwise.host import host_facts

    n = args.items
    rows = []
    for buffer in (1_000, 10_000):
        base = cd.from_iterable(lambda: iter(range(n))).shuffle(seed=0, buffer_size=buffer)
        plain, ahead = rate(base, n), rate(base.prefetch(4), n)
        rows.append({"buffer": buffer, "items_per_s": round(plain), "with_prefetch_items_per_s": round(ahead),
                     "prefetch_slowdown": round(plain / ahead, 2)})
        print(f"buffer {buffer:>6}: {plain:>10,.0f} items/s, with prefetch {ahead:>10,.0f} items/s "
              f"({plain / ahead:.1f}x slower)")
    floor = rate(cd.from_iterable(lambda: iter(range(n))).prefetch(4), n)
    print(f"prefetch of the bare iterable (no shuffle): {floor:,.0f} items/s")
    out = {"benchmark": "window_shuffle_state", "items": n, "rows": rows,
           "prefetch_only_items_per_s": round(floor), "host": host_facts().to_dict(),
           "note": "machine may be shared/noisy; compare only within one run"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
