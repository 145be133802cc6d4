"""The resume contract (cpuwise.testing.stages.check_stage_resume) on every registered stage.

A stage module registers its kind when it loads; the registry must name the same kinds as CASES, so
a new stage file without a contract case fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from engine_fns import Jitter, arange16, fail_on_7s, square, to_array

import cpuwise.data as cd
from cpuwise.data.stages import registered
from cpuwise.testing.stages import check_stage_resume


def odd(x: int) -> bool:
    return x % 2 == 1


def numbers(n: int) -> cd.Dataset:
    return cd.from_sequence(list(range(n)))


# kind -> pipelines that exercise it (each builds the same pipeline every call: `tmp` for files)
CASES: dict[str, list[Callable[[Path], cd.Dataset]]] = {
    "source": [
        lambda tmp: numbers(13),
        lambda tmp: cd.from_iterable(lambda: iter(range(13))),
    ],
    "shuffle": [
        lambda tmp: numbers(13).shuffle(seed=3),  # a global permutation of the source
        lambda tmp: cd.from_iterable(lambda: iter(range(13))).shuffle(seed=3, buffer_size=4),  # a window
    ],
    "map": [
        lambda tmp: numbers(29).map(arange16, workers=2, backend="thread").map(Jitter()),
        lambda tmp: numbers(29).map(to_array, workers=2, backend="process"),
        lambda tmp: cd.from_sequence(list(range(230))).map(fail_on_7s, backend="inline", on_error="skip"),
    ],
    "filter": [lambda tmp: numbers(20).shuffle(seed=1).filter(odd)],
    "batch": [
        lambda tmp: numbers(20).batch(3),
        lambda tmp: numbers(20).shuffle(seed=2).batch(6, drop_last=True),
    ],
    "prefetch": [lambda tmp: numbers(20).map(square, workers=2, backend="thread").prefetch(3)],
    "cache": [
        lambda tmp: numbers(12).map(square, backend="inline").cache().shuffle(seed=5),
        lambda tmp: numbers(12).map(arange16, backend="inline").cache(str(tmp / "cache")).batch(5),
    ],
    "repeat": [lambda tmp: numbers(5).shuffle(seed=1).repeat(3)],
    "shard": [
        lambda tmp: numbers(23).shuffle(seed=6).shard(3, 1).map(square, workers=2, backend="thread")
        .filter(odd).batch(2),  # by index; the filter's drops padded in lockstep
        lambda tmp: cd.from_iterable(lambda: iter(range(22))).shuffle(seed=2, buffer_size=5).shard(4, 3)
        .map(fail_on_7s, backend="inline", on_error="skip"),  # by position in the stream, unbatched
        lambda tmp: numbers(17).shard(5, 4, drop_remainder=True).prefetch(2).batch(2),
    ],
    "take": [lambda tmp: numbers(30).shuffle(seed=4).map(square, workers=2, backend="thread").take(11)],
}


def test_every_registered_stage_has_a_contract_case() -> None:
    assert set(registered()) == set(CASES), (
        "every stage kind needs a case here (and nothing else does): registered "
        f"{sorted(registered())}, cases {sorted(CASES)}"
    )


@pytest.mark.parametrize("kind,make", [(k, m) for k, makes in CASES.items() for m in makes],
                         ids=[f"{k}-{i}" for k, makes in CASES.items() for i in range(len(makes))])
def test_stage_resumes_mid_epoch_next_epoch_from_start_and_end(
        kind: str, make: Callable[[Path], cd.Dataset], tmp_path: Path) -> None:
    check_stage_resume(lambda: make(tmp_path))
