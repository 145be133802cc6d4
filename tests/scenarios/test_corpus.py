"""The scenario corpus, end to end: every real training script runs under the doctor, gets its primary
verdict and none of its wrong ones, its fix is written in its framework's idiom, and its ranks are
recognised as ranks.

On a shared machine other processes may take a substantial share of the cores; the recording then shows
it and `cpu_contention` is an accepted primary verdict (`cpuwise.testing.verdicts.accepted`); the wrong
verdicts never are. Set CPUWISE_CORPUS_OUT=folder to also keep each scenario's recording and a
verdicts.json there (the README's table; re-diagnose offline with `cpuwise doctor --from`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpuwise._schema import Recording
from cpuwise.diagnose import diagnose
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import measure
from cpuwise.monitor.backends import NoGpu
from cpuwise.monitor.runner import run_job
from cpuwise.testing.verdicts import accepted, others_share

sys.path.insert(0, str(Path(__file__).parent))
from corpus import SCENARIOS, Scenario  # noqa: E402

OUT = os.environ.get("CPUWISE_CORPUS_OUT")


def label(sc: Scenario) -> str:
    return sc.script.removesuffix(".py") + ("+hog" if sc.neighbour_hog else "")


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each job runs in its own folder (HF and Lightning write logs where they run)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    yield tmp_path


def run(sc: Scenario) -> tuple[Recording, list[Finding], float]:
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if sc.neighbour_hog else None
    env = dict(os.environ)
    os.environ.update(sc.env)
    t0 = time.monotonic()
    try:
        rec = run_job(sc.command(sys.executable), gpu=NoGpu("scenario corpus: CPU only"),
                      hang_timeout=sc.hang_timeout)
    finally:
        os.environ.clear()
        os.environ.update(env)
        if hog is not None:
            hog.kill()
            hog.wait()
    return rec, diagnose(rec), time.monotonic() - t0


def _record(sc: Scenario, rec: Recording, findings: list[Finding], seconds: float) -> None:
    if not OUT:
        return
    out = Path(OUT)
    out.mkdir(parents=True, exist_ok=True)
    rec.save(out / f"{label(sc)}.json")
    path = out / "verdicts.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[sc.name] = {"verdict": findings[0].id, "all": [f.id for f in findings], "seconds": round(seconds, 1),
                     "others_share": round(others_share(rec), 2), "exit": rec.exit_code,
                     "steps": sum(lane.n for lane in rec.step_lanes)}
    path.write_text(json.dumps(data, indent=1))


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("sc", SCENARIOS, ids=[label(s) for s in SCENARIOS])
def test_scenario(sc: Scenario, in_tmp: Path) -> None:
    rec, findings, seconds = run(sc)
    _record(sc, rec, findings, seconds)
    ids = [f.id for f in findings]
    assert rec.exit_code == sc.exit_code, (rec.exit_code, rec.job_info.get("python_exception"), ids)
    ok, why = accepted(rec, findings, expected=sc.verdict, wrong=sc.wrong)
    assert ok, why + "\n" + "\n".join(f"{f.id}: {f.summary}" for f in findings)
    mine = findings[0] if findings[0].id in sc.verdict else None
    if mine is not None:  # None only when cpu_contention is the primary verdict (accepted above): the job's
        # own fix cannot be judged while another process takes its cores
        for fragment in sc.fix_contains:
            assert fragment in mine.fix_code, f"{fragment!r} not in the fix of {mine.id}:\n{mine.fix_code}"
        for fragment in sc.says:
            assert fragment in mine.summary, f"{fragment!r} not in {mine.id}'s summary: {mine.summary}"
    if sc.ranks is not None:
        m = measure(rec)
        assert sorted(r.rank for r in m.ranks) == list(range(sc.ranks)), m.ranks
        assert {p.role for p in rec.processes if p.pid in {r.pid for r in m.ranks}} == {"rank"}
