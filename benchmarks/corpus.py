"""The scenario corpus for real: every script of tests/scenarios under the doctor, its verdict judged.

    python benchmarks/corpus.py                   # the verdict table, JSON to benchmarks/results/corpus.json
    python benchmarks/corpus.py --before ce4c613  # also each scenario under the doctor of that revision
    python benchmarks/corpus.py --record          # also (re)write tests/scenarios/recordings for the
                                                  # measured scenarios whose verdict is right
    python benchmarks/corpus.py --only torch_copy_on_read --only lightning_compute

The verdicts of the measured scenarios rest on shares of time and CPU, so they are run here rather than
in the default suite (which replays their recordings). `--before REV` checks REV out into a temporary
git worktree and runs `python -m cpuwise doctor` from its source on the same script, so the table shows
what each failure class got before and after; the "before" doctor is judged on its primary verdict.
Nothing else should run on the machine: load changes the shares (the JSON records the load average).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "scenarios"))
OUT = ROOT / "benchmarks" / "results" / "corpus.json"


def before_verdicts(sc: Any, src: Path, work: Path) -> dict[str, Any]:
    """Run `sc` under the doctor of another checkout's source (`src`): its findings' ids."""
    out = work / "before-report"
    cmd = [sys.executable, "-m", "cpuwise", "doctor", "--out", str(out)]
    if sc.hang_timeout:
        cmd += ["--hang-timeout", str(sc.hang_timeout)]
    env = {**os.environ, "PYTHONPATH": str(src), "KERAS_BACKEND": "torch", "TOKENIZERS_PARALLELISM": "false",
           **sc.env}
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if sc.neighbour_hog else None
    try:
        done = subprocess.run([*cmd, "--", *sc.command(sys.executable)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    report = out / "report.json"
    if not report.is_file():
        return {"verdict": None, "all": [], "error": (done.stderr or done.stdout)[-400:]}
    ids = [f["id"] for f in json.loads(report.read_text()).get("findings", [])]
    return {"verdict": ids[0] if ids else "insufficient_data", "all": ids}


def markdown(result: dict[str, Any]) -> str:
    """The README's table: each scenario's expected verdict, the verdict before (with --before) and now."""
    before = result.get("before_revision")
    head = "| scenario | expected | " + (f"before ({before}) | " if before else "") + "now |"
    rows = [head, "|---|---|" + ("---|" if before else "") + "---|"]

    def cell(verdict: str | None, ok: bool) -> str:
        return f"{verdict or 'no report'} {'✓' if ok else '✗'}"

    for r in result["scenarios"].values():
        was = f"{cell(r['before']['verdict'], r['before']['ok'])} | " if before else ""
        rows.append(f"| {r['name']} | {' / '.join(r['expected'])} | {was}{cell(r['verdict'], r['ok'])} |")
    return "\n".join(rows)


def main() -> None:
    from corpus import RECORDINGS, SCENARIOS, problems, run

    from cpuwise.diagnose.metrics import measure
    from cpuwise.host import host_facts
    from cpuwise.testing.verdicts import others_share

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", metavar="REV", help="also run each scenario under this git revision's doctor")
    ap.add_argument("--record", action="store_true", help="write the recordings the suite replays")
    ap.add_argument("--only", action="append", default=None, help="a scenario label (repeatable)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    chosen = [sc for sc in SCENARIOS if args.only is None or sc.label in args.only]
    if args.only and len(chosen) != len(set(args.only)):
        sys.exit(f"unknown scenario(s) {sorted(set(args.only) - {sc.label for sc in SCENARIOS})}; "
                 f"known: {[sc.label for sc in SCENARIOS]}")
    scratch = Path(tempfile.mkdtemp(prefix="cpuwise-corpus-"))
    before_src = None
    if args.before:
        tree = scratch / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), args.before],
                       check=True)
        before_src = tree / "src"
    rows: dict[str, Any] = {}
    load0 = os.getloadavg()
    cwd = Path.cwd()
    try:
        for sc in chosen:
            work = scratch / sc.label
            work.mkdir()
            os.chdir(work)
            try:
                rec, findings, seconds = run(sc)
            finally:
                os.chdir(cwd)
            found = problems(sc, rec, findings)
            m = measure(rec)
            row: dict[str, Any] = {
                "name": sc.name, "expected": list(sc.verdict), "wrong": list(sc.wrong),
                "deterministic": sc.deterministic, "verdict": findings[0].id if findings else None,
                "all": [f.id for f in findings], "ok": not found, "problems": found,
                "summary": findings[0].summary if findings else "", "seconds": round(seconds, 1),
                "others_share": round(others_share(rec), 2), "exit": rec.exit_code,
                "steps": m.steps.n if m.steps is not None else 0,
            }
            if before_src is not None:
                b = before_verdicts(sc, before_src, work)
                b["ok"] = b["verdict"] in sc.verdict and not set(b["all"]) & set(sc.wrong)
                row["before"] = b
            # a recording is kept only when the job's own verdict is right (not cpu_contention, which a
            # loaded machine also accepts): it is what the suite replays
            if args.record and not sc.deterministic and not found and row["verdict"] in sc.verdict:
                RECORDINGS.mkdir(exist_ok=True)
                data = json.dumps(rec.to_dict(), separators=(",", ":")).encode()
                (RECORDINGS / f"{sc.label}.json.gz").write_bytes(gzip.compress(data, 9, mtime=0))
            rows[sc.label] = row
            was = f" (before: {row['before']['verdict']})" if "before" in row else ""
            print(f"{'ok ' if not found else 'BAD'} {sc.label:32s} {row['verdict']}{was}  {seconds:.0f} s"
                  + ("" if not found else "\n    " + found[0].splitlines()[0]), flush=True)
    finally:
        if before_src is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before_src.parent)],
                           check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "host": host_facts().to_dict(), "load_average_start": load0, "load_average_end": os.getloadavg(),
        "before_revision": args.before, "scenarios": rows,
        "right": sum(r["ok"] for r in rows.values()), "of": len(rows),
        "right_before": sum(r["before"]["ok"] for r in rows.values()) if args.before else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    print(f"{result['right']}/{result['of']} right" +
          (f" (before: {result['right_before']}/{result['of']})" if args.before else "") + f"; {args.out}")


if __name__ == "__main__":
    main()
