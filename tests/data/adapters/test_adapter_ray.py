"""Ray Data backend on a local Ray (2 CPUs): the same items as the local pipeline, streaming_split for
ranks, a killed worker's task retried with nothing lost, and what Ray cannot promise refused clearly."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_fns import Jitter, arange16, square
from ray_fns import KillMe, big_enough, fail_on_7s, times10

import cpuwise.data as cd
from cpuwise.data.adapters.ray import ray_plan
from cpuwise.errors import ConfigError, MissingExtraError, StateError
from cpuwise.testing.stages import plain

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:ray.*")


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    pytest.importorskip("ray.data")
    from ray_session import ray_session

    with ray_session() as ray:
        yield ray


def rows(batches: Any) -> list[Any]:
    """Every sample of a list of collated batches, as comparable values, sorted."""
    out = []
    for b in batches:
        cols = b if isinstance(b, tuple) else (b,)
        out += list(zip(*[plain(list(c)) for c in cols], strict=True))
    return sorted(out)


def pipeline() -> cd.Dataset:
    return (cd.from_sequence(list(range(60))).shuffle(seed=3).map(square).map(fail_on_7s, on_error="skip")
            .map(arange16).map(Jitter()).filter(big_enough).batch(4))


def test_to_ray_gives_the_local_pipelines_items(ray_local: Any) -> None:
    local = pipeline()
    ray_ds = local.to_ray(epoch=1)
    local.set_epoch(1)
    want = rows(local)
    assert want and rows(cd.from_ray(ray_ds)) == want
    plans = ray_plan(ray_ds)
    assert [p.name for p in plans] == ["map(square) + map(fail_on_7s) + map(arange16) + map(Jitter)",
                                       "filter(big_enough)"]
    assert all(p.batch_size >= 1 and p.concurrency >= 1 and p.per_item_s > 0 for p in plans)


def test_streaming_split_gives_each_rank_a_disjoint_equal_part(ray_local: Any) -> None:
    ds = cd.from_sequence(list(range(40))).map(times10).batch(5)
    parts = cd.from_ray(ds.to_ray(), splits=2)
    got: list[list[int]] = [[], []]

    def consume(i: int) -> None:
        got[i] = [int(x) for b in parts[i] for x in b]

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(got[0] + got[1]) == [10 * i for i in range(40)]
    assert len(got[0]) == len(got[1]) == 20


def test_a_mid_epoch_state_of_an_unordered_ray_source_is_refused(ray_local: Any) -> None:
    ds = cd.from_ray(cd.from_sequence(list(range(12))).map(times10).to_ray())
    it = iter(ds)
    next(it)
    state = ds.state_dict()
    again = cd.from_ray(cd.from_sequence(list(range(12))).map(times10).to_ray())
    with pytest.raises(StateError, match="preserve_order"):
        again.load_state_dict(state)
    list(it)
    again.load_state_dict(ds.state_dict())  # at the epoch's end: fine
    assert sorted(int(x) for x in again) == [10 * i for i in range(12)]


def test_a_killed_worker_task_is_retried_and_no_item_is_lost(ray_local: Any, tmp_path: Path) -> None:
    victim = 25  # past the items to_ray() times on the driver (the first 16)
    ds = cd.from_sequence(list(range(30))).map(KillMe(str(tmp_path), victim)).batch(5)
    got: list[int] = []
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            got.extend(int(x) for b in cd.from_ray(ds.to_ray()) for x in b)
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)

    t = threading.Thread(target=consume)
    t.start()
    running = tmp_path / "running"
    deadline = time.monotonic() + 180
    while not running.exists() and time.monotonic() < deadline and t.is_alive():
        time.sleep(0.05)
    assert running.exists(), f"the map task never reached the victim sample ({errors})"
    os.kill(int(running.read_text()), signal.SIGKILL)
    t.join(180)
    assert not t.is_alive() and not errors, errors
    attempts = (tmp_path / "attempts").read_text().split()
    assert len(attempts) == 2 and attempts[0] != attempts[1], "the task ran again in another worker"
    assert sorted(got) == [10 * i for i in range(30)], "no item lost, none twice"


def test_pipelines_ray_cannot_run_say_why(ray_local: Any) -> None:
    with pytest.raises(ConfigError, match="cache"):
        cd.from_sequence(list(range(5))).map(times10).cache().batch(2).to_ray()
    with pytest.raises(ConfigError, match="splits"):
        cd.from_ray(cd.from_sequence([1]).to_ray(), splits=0)


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"cpuwise\[ray\]"):
        cd.from_sequence([1, 2]).map(square).to_ray()
    with pytest.raises(MissingExtraError, match=r"cpuwise\[ray\]"):
        cd.from_ray(object())
