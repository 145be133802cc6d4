"""Does `cpuwise doctor --try-fixes` rank the fix that really helps most, and claim its speed-up right?

On four jobs (benchmarks/try_fixes_jobs/: the demo's training job, and copies of three scenario scripts of
different causes: too few workers, CPU-saturated preprocessing, oversubscription), it runs
`cpuwise doctor --try-fixes`, then measures by hand, with no cpuwise in the job: a copy of the script with
each tried change written in (median of --repeats runs, the variants interleaved), and a hand-written
synthetic-data version (the job's model on one batch of its shape) against the upper bound. Each job
measures the same way as a trial (from the entry of delivery 5 to the entry of delivery 5 + N, the same
N as the trials). Recorded per job: whether the change --try-fixes ranks first is the hand-measured best,
its hand-measured speed-up (target >= 1.2x), claimed vs hand-measured (within 20 %), upper bound vs
synthetic (within 15 %).

    python benchmarks/try_fixes.py            # ~25 min on 2 cores (--trial-repeats 1: ~17 min)
    python benchmarks/try_fixes.py --quick    # one run per trial and per hand variant, two jobs
    python benchmarks/try_fixes.py --jobs demo,saturated   # re-measure some jobs, keep the others

Writes benchmarks/results/try_fixes.json (machine, CPU flags, load average before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
JOBS = HERE / "try_fixes_jobs"
RESULTS = HERE / "results" / "try_fixes.json"
SPEEDUP_TARGET, CLAIM_TOLERANCE, UPPER_TOLERANCE = 1.2, 0.20, 0.15


def hand_edit(src: str, changes: dict[str, Any]) -> str:
    """The script with `changes` written in, as a user would edit it (the jobs mark their thread lines)."""
    out = src
    if changes.get("cpuwise_data"):
        out = out.replace("from torch.utils.data import DataLoader, Dataset",
                          "from torch.utils.data import Dataset\n"
                          "from cpuwise.data.adapters.torch import DataLoader")
        out = out.replace("from torch.utils.data import DataLoader\n",
                          "from cpuwise.data.adapters.torch import DataLoader\n")
        if "num_workers" not in changes:
            out = re.sub(r"num_workers=\d+", "num_workers=None", out)
    if "num_workers" in changes:
        out = re.sub(r"num_workers=\d+", f"num_workers={changes['num_workers']}", out)
    for key in ("persistent_workers", "prefetch_factor", "pin_memory"):
        if key in changes:
            if f"{key}=" in out:
                out = re.sub(rf"{key}=\w+", f"{key}={changes[key]}", out)
            else:
                out = re.sub(r"(num_workers=\w+)", rf"\1, {key}={changes[key]}", out, count=1)
    if "batch_size" in changes:
        out = re.sub(r"^BATCH = \d+", f"BATCH = {changes['batch_size']}", out, flags=re.M)
    if changes.get("threads_main"):
        n = changes["threads_main"]
        out = re.sub(r"torch\.set_num_threads\(\d+\)  # main threads",
                     f"torch.set_num_threads({n})  # main threads", out)
        out = re.sub(r'os\.environ\.setdefault\("OMP_NUM_THREADS", "\d+"\)',
                     f'os.environ.setdefault("OMP_NUM_THREADS", "{n}")', out)
    if changes.get("threads_worker") and not changes.get("cpuwise_data"):  # cpuwise.data: 1 thread already
        n = changes["threads_worker"]
        if "# worker threads" in out:
            out = re.sub(r"torch\.set_num_threads\(\d+\)  # worker threads",
                         f"torch.set_num_threads({n})  # worker threads", out)
        else:  # no worker init yet: write one, as the fix's code says
            out = out.replace("\ndef main() -> None:", "\ndef cap_worker_threads(_: int) -> None:\n"
                              f"    torch.set_num_threads({n})  # worker threads\n\n\ndef main() -> None:", 1)
            out = re.sub(r"(num_workers=\w+)", r"\1, worker_init_fn=cap_worker_threads", out, count=1)
    if changes.get("threads_main") and "OMP_NUM_THREADS" not in out:
        # the whole job's native pools, before numpy/torch load (the fix's `OMP_NUM_THREADS=...` line)
        out = out.replace('"""\n\nimport os\n', f'"""\n\nimport os\n\nos.environ["OMP_NUM_THREADS"] = '
                          f'"{changes["threads_main"]}"  # main threads\n', 1)
        if "OMP_NUM_THREADS" not in out:
            out = f'import os\nos.environ["OMP_NUM_THREADS"] = "{changes["threads_main"]}"\n' + out
    return out


def run_script(path: Path, args: list[str], env: dict[str, str], timeout: float = 300) -> float | None:
    """One plain run (no cpuwise in the job): its samples/s, None if it failed."""
    proc = subprocess.run([sys.executable, str(path), *args], env={**os.environ, **env}, cwd=path.parent,
                          capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return float(json.loads(line.split(" ", 1)[1])["samples_per_s"])
    sys.stderr.write(f"  {path.name} failed: {proc.stderr[-600:]}\n")
    return None


def try_fixes(script: Path, args: list[str], out: Path, repeats: int) -> dict[str, Any]:
    """`cpuwise doctor --try-fixes --repeats R` on the job; report.json's trials and summary."""
    cmd = [sys.executable, "-m", "cpuwise.cli.app", "doctor", "--out", str(out), "--try-fixes",
           "--repeats", str(repeats), "--", sys.executable, str(script), *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=script.parent, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    report = json.loads((out / "report.json").read_text())
    verdict = report["findings"][0]["id"] if report.get("findings") else None
    return {"trials": report.get("trials", []), "summary": report.get("try_fixes", {}), "verdict": verdict,
            "wall_s": round(wall, 1), "exit_code": proc.returncode,
            "table": proc.stdout[proc.stdout.find("cpuwise doctor --try-fixes: measured"):][:4000]}


def bench_job(name: str, script: Path, args: list[str], work: Path, repeats: int,
              trial_repeats: int) -> dict[str, Any]:
    print(f"== {name}: cpuwise doctor --try-fixes --repeats {trial_repeats} ...", flush=True)
    tf = try_fixes(script, args, work / f"report-{name}", trial_repeats)
    steps = int(tf["summary"].get("steps") or 50)
    trials = tf["trials"]
    print(tf["table"], flush=True)
    fixes = [t for t in trials if t["kind"] in ("fix", "combination") and t["status"] == "ok"]
    source = script.read_text()
    variants: dict[str, Path] = {}
    for i, t in enumerate(fixes):
        edited = script.parent / f"_hand_{name}_{i}.py"
        edited.write_text(hand_edit(source, t["changes"]))
        variants[t["change"]] = edited
    hand: dict[str, list[float]] = {"as is": [], "synthetic": [], **{c: [] for c in variants}}
    env = {"BENCH_STEPS": str(steps)}
    upper_trial = next((t for t in trials if t["kind"] == "upper bound"), None)
    synth_steps = int((upper_trial or {}).get("steps") or steps)  # as many steps as the upper bound made
    try:
        for r in range(repeats):  # interleaved: a drift in the machine's load touches every variant alike
            print(f"   hand-measured round {r + 1}/{repeats} ({steps} steps each) ...", flush=True)
            for label in hand:
                path = variants.get(label, script)
                extra = {"SYNTHETIC": "1", "BENCH_STEPS": str(synth_steps)} if label == "synthetic" else {}
                rate = run_script(path, args, {**env, **extra})
                if rate is not None:
                    hand[label].append(rate)
    finally:
        for p in variants.values():
            p.unlink(missing_ok=True)
    med = {k: statistics.median(v) for k, v in hand.items() if v}
    base = med.get("as is")
    hand_speedup = {k: v / base for k, v in med.items() if base and k not in ("as is", "synthetic")}
    claimed = {t["change"]: t.get("speedup") for t in fixes}
    top = tf["summary"].get("best") or (max(claimed, key=lambda c: claimed[c] or 0) if claimed else None)
    hand_best = max(hand_speedup, key=lambda c: hand_speedup[c]) if hand_speedup else None
    upper = next((t for t in trials if t["kind"] == "upper bound"), None)
    upper_rate = upper.get("samples_per_s") if upper else None
    synth = med.get("synthetic")
    top_claim, top_hand = claimed.get(top) if top else None, hand_speedup.get(top) if top else None
    # the best is "the same" when the ranked-first change is within the noise (3 %) of the hand-measured best
    same_best = bool(top and hand_best
                     and (top == hand_best or (top_hand or 0) >= 0.97 * hand_speedup[hand_best]))
    result = {
        "job": name, "trial_repeats": trial_repeats, "script": str(script.relative_to(HERE.parent)),
        "args": args, "verdict": tf["verdict"],
        "steps_per_trial": steps, "try_fixes_wall_s": tf["wall_s"], "try_fixes_exit_code": tf["exit_code"],
        "trials": trials, "hand_rates": {k: [round(x, 2) for x in v] for k, v in hand.items()},
        "hand_median": {k: round(v, 2) for k, v in med.items()},
        "hand_speedup": {k: round(v, 3) for k, v in hand_speedup.items()},
        "ranked_first": top, "hand_best": hand_best,
        "ranked_first_is_hand_best": same_best,
        "ranked_first_hand_speedup": round(top_hand, 3) if top_hand else None,
        "speedup_target_met": bool(top_hand and top_hand >= SPEEDUP_TARGET),
        "ranked_first_claimed_speedup": top_claim,
        "claim_error": round(abs(top_claim / top_hand - 1), 3) if top_claim and top_hand else None,
        "claim_within_20pct": bool(top_claim and top_hand
                                   and abs(top_claim / top_hand - 1) <= CLAIM_TOLERANCE),
        "upper_bound_samples_per_s": upper_rate,
        "synthetic_samples_per_s": round(synth, 2) if synth else None,
        "upper_vs_synthetic": round(upper_rate / synth - 1, 3) if upper_rate and synth else None,
        "upper_within_15pct": bool(upper_rate and synth and abs(upper_rate / synth - 1) <= UPPER_TOLERANCE),
        "table": tf["table"],
    }
    print(f"   ranked first: {top} (claimed {top_claim}x, hand {result['ranked_first_hand_speedup']}x); "
          f"hand best: {hand_best}; upper {upper_rate} vs synthetic {result['synthetic_samples_per_s']} "
          f"samples/s", flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one hand run per variant, two jobs")
    ap.add_argument("--repeats", type=int, default=3, help="hand runs per variant (the median is kept)")
    ap.add_argument("--trial-repeats", type=int, default=3,
                    help="--try-fixes --repeats: runs per trial (the median is kept; --quick: 1)")
    ap.add_argument("--jobs", default="", help="comma-separated subset: demo,too_few_workers,saturated,"
                                               "oversubscribed (re-measured in the results, the rest kept)")
    args = ap.parse_args()
    # lazy: the benchmark's own machinery loads after the arguments are read
    from cpuwise.demo.images import make_dataset
    from cpuwise.host import host_facts

    repeats = 1 if args.quick else args.repeats
    work = Path(tempfile.mkdtemp(prefix="cpuwise-bench-tryfixes-"))
    try:
        data = make_dataset(work / "images", 320)
        jobs = {"demo": (JOBS / "demo_train.py", [str(data)]),
                "too_few_workers": (JOBS / "too_few_workers.py", []),
                "saturated": (JOBS / "saturated.py", []),
                "oversubscribed": (JOBS / "oversubscribed.py", [])}
        chosen = [j for j in args.jobs.split(",") if j] or (["demo", "too_few_workers"] if args.quick
                                                            else list(jobs))
        facts = host_facts()
        print(f"CPU: {facts.cpu_model}; {facts.usable_cores} usable cores; flags: "
              f"{', '.join(k for k, v in facts.cpu_flags.items() if v)}; load {os.getloadavg()}", flush=True)
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        results = []
        for name in chosen:
            load = os.getloadavg()
            res = bench_job(name, *jobs[name], work, repeats, 1 if args.quick else args.trial_repeats)
            res.update(load_average_before=load, load_average_after=os.getloadavg(),
                       measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            results.append(res)
            write(results, jobs, args, facts, load_before, repeats, t0)  # after each job: a cut run keeps it
        print(f"wrote {RESULTS.parent} ({time.perf_counter() - t0:.0f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write(results: list[dict[str, Any]], jobs: dict[str, Any], args: Any, facts: Any,
          load_before: tuple[float, ...], repeats: int, t0: float) -> None:
    """The results so far; jobs this run does not measure are kept from the file (a partial re-run).
    --quick writes try_fixes_quick.json."""
    path = RESULTS.with_name("try_fixes_quick.json") if args.quick else RESULTS
    if path.exists():
        done = {j["job"] for j in results}
        kept = [j for j in json.loads(path.read_text()).get("jobs", []) if j.get("job") not in done]
        results = sorted(kept + results, key=lambda j: list(jobs).index(j["job"]))
    out = {
        "benchmark": "try_fixes", "quick": args.quick, "hand_repeats": repeats,
        "machine": facts.to_dict(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "wall_s": round(time.perf_counter() - t0, 1), "jobs": results,
        "targets": {"ranked_first_is_hand_best": True, "speedup": SPEEDUP_TARGET,
                    "claim_tolerance": CLAIM_TOLERANCE, "upper_vs_synthetic_tolerance": UPPER_TOLERANCE},
        "note": "hand-measured runs have no cpuwise in the job; try-fixes trials run under the doctor. "
                "On a machine other processes keep busy (see the load average) every rate is noisier.",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
