"""Every field of a loaded state is checked: a bad value is a StateError naming the field, at load time.

Issue 14 (item 8): `load_state_dict` accepted `skip=-1` (the resumed epoch re-delivered items) and
`epoch=-5` (a raw numpy ValueError at the next iter()).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from engine_fns import square

import cpuwise.data as cd
from cpuwise.errors import StateError


def pipeline() -> cd.Dataset:
    return (cd.from_sequence(list(range(40))).shuffle(seed=1).map(square, backend="inline").batch(3)
            .prefetch(2))


def stream() -> cd.Dataset:
    return (cd.from_iterable(lambda: iter(range(40))).shuffle(seed=1, buffer_size=5).filter(bool).take(9)
            .repeat(2))


def saved(make: Callable[[], cd.Dataset], k: int) -> dict[str, Any]:
    ds = make()
    it = iter(ds)
    for _ in range(k):
        next(it)
    state = ds.state_dict()
    ds.close()
    return state


def at(state: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The dict holding the field at `path` ("stages.up.up.skip") and the field's key."""
    *parents, key = path.split(".")
    node = state
    for p in parents:
        node = node[p]
    return node, key


MAP = "stages.up.up"  # prefetch -> batch -> map
BAD: list[tuple[Callable[[], cd.Dataset], str, Any, str]] = [
    (pipeline, f"{MAP}.skip", -1, "skip"),
    (pipeline, f"{MAP}.skip", 10**9, "skip"),
    (pipeline, f"{MAP}.skip", "2", "skip"),
    (pipeline, f"{MAP}.index", -3, "index"),
    (pipeline, f"{MAP}.up.up.pos", -1, "pos"),
    (pipeline, f"{MAP}.up.up.pos", 41, "pos"),
    (pipeline, "epoch", -5, "epoch"),
    (pipeline, "epoch", True, "epoch"),
    (pipeline, "epoch", 1.5, "epoch"),
    (pipeline, "stages", [1, 2], "stages"),
    (pipeline, "pipeline", "from_sequence", "pipeline"),
    (pipeline, "stages.up.partial", 7, "partial"),
    (stream, "stages.pass", -1, "pass"),
    (stream, "stages.pass", 3, "pass"),
    (stream, "stages.up.count", 10, "count"),
    (stream, "stages.up.up.up.up.pos", -2, "pos"),
    (stream, "stages.up.up.up.buffer", "abc", "buffer"),
]


@pytest.mark.parametrize("make,path,value,field", BAD, ids=[f"{p}={v!r}" for _, p, v, _ in BAD])
def test_a_bad_field_is_a_state_error_at_load_time(make: Callable[[], cd.Dataset], path: str, value: Any,
                                                   field: str) -> None:
    state = copy.deepcopy(saved(make, 2))
    node, key = at(state, path)
    node[key] = value
    ds = make()
    with pytest.raises(StateError, match=field):
        ds.load_state_dict(state)
    ds.close()


@pytest.mark.parametrize("make,path", [(pipeline, f"{MAP}.skip"), (pipeline, f"{MAP}.up"),
                                       (stream, "stages.pass")])
def test_a_missing_field_is_a_state_error_naming_it(make: Callable[[], cd.Dataset], path: str) -> None:
    state = copy.deepcopy(saved(make, 2))
    node, key = at(state, path)
    del node[key]
    ds = make()
    with pytest.raises(StateError, match=key):
        ds.load_state_dict(state)
    ds.close()


def test_a_valid_state_still_resumes_exactly() -> None:
    ref = [x.tolist() for x in pipeline()]
    ds = pipeline()
    ds.load_state_dict(saved(pipeline, 4))
    assert [x.tolist() for x in ds] == ref[4:]
