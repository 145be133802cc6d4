"""The scenario corpus (tests/scenarios/corpus.py) in the suite.

- The deterministic scenarios (a crash, a rank's crash, a hang) run for real under the doctor.
- Every measured scenario is judged on a recording of a real run (tests/scenarios/recordings, made by
  `python benchmarks/corpus.py --record`): the rules' answer on real data, the same on any machine.
- `pytest tests/scenarios --corpus` runs the measured scenarios for real as well. They are not in the
  default suite: their verdicts rest on measured shares of time and CPU, and a 2-core machine shared
  with other jobs can tip a borderline share (`python benchmarks/corpus.py` runs them with a table).

On a shared machine other processes may take a substantial share of the cores; the recording then shows
it and `cpu_contention` is an accepted primary verdict (`cpuwise.testing.verdicts.accepted`); the wrong
verdicts never are.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpuwise._schema import Recording
from cpuwise.diagnose import diagnose

sys.path.insert(0, str(Path(__file__).parent))
from corpus import RECORDINGS, SCENARIOS, Scenario, problems, run  # noqa: E402

MEASURED = [sc for sc in SCENARIOS if not sc.deterministic]


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each job runs in its own folder (HF and Lightning write logs where they run)."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def load_recording(sc: Scenario) -> Recording:
    path = RECORDINGS / f"{sc.label}.json.gz"
    assert path.is_file(), f"no recording for {sc.label}: run `python benchmarks/corpus.py --record`"
    return Recording.from_dict(json.loads(gzip.decompress(path.read_bytes())))


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("sc", [pytest.param(sc, marks=() if sc.deterministic else pytest.mark.corpus)
                                for sc in SCENARIOS], ids=[sc.label for sc in SCENARIOS])
def test_scenario(sc: Scenario, in_tmp: Path) -> None:
    rec, findings, _ = run(sc)
    found = problems(sc, rec, findings)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("sc", MEASURED, ids=[sc.label for sc in MEASURED])
def test_recorded_scenario(sc: Scenario) -> None:
    rec = load_recording(sc)
    found = problems(sc, rec, diagnose(rec))
    assert not found, "\n".join(found)


def test_every_recording_belongs_to_a_measured_scenario() -> None:
    names = {f"{sc.label}.json.gz" for sc in MEASURED}
    assert {p.name for p in RECORDINGS.glob("*")} <= names
