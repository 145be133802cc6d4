"""The scenario corpus (tests/scenarios/corpus.py) in the suite.

- Every scenario runs end to end under the doctor. The deterministic ones (a crash, a rank's crash, a
  hang) are judged whole; the measured ones on what holds on any machine (`corpus.mechanics`: exit code,
  steps timed, ranks recognised, the framework's idiom), since their verdicts rest on shares of time and
  CPU that a 2-core machine shared with other jobs can tip.
- Every measured scenario's verdict is judged on a recording of a real run (tests/scenarios/recordings,
  made by `python benchmarks/corpus.py --record`): the rules' answer on real data, the same anywhere.
- `pytest tests/scenarios --corpus` judges the measured scenarios' live verdicts too (as
  `python benchmarks/corpus.py` does, with a table).

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
from corpus import RECORDINGS, SCENARIOS, Scenario, mechanics, problems, run  # noqa: E402

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
@pytest.mark.parametrize("sc", SCENARIOS, ids=[sc.label for sc in SCENARIOS])
def test_scenario(sc: Scenario, in_tmp: Path, request: pytest.FixtureRequest) -> None:
    rec, findings, _ = run(sc)
    live = sc.deterministic or request.config.getoption("--corpus")
    found = problems(sc, rec, findings) if live else mechanics(sc, rec)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("sc", MEASURED, ids=[sc.label for sc in MEASURED])
def test_recorded_scenario(sc: Scenario) -> None:
    rec = load_recording(sc)
    found = problems(sc, rec, diagnose(rec))
    assert not found, "\n".join(found)


def test_every_recording_belongs_to_a_measured_scenario() -> None:
    names = {f"{sc.label}.json.gz" for sc in MEASURED}
    assert {p.name for p in RECORDINGS.glob("*")} <= names
