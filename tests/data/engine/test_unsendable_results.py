"""A map result that cannot travel back from a worker process costs that one sample, not its chunk
(issue 14, item 1): skipped and named under on_error="skip", a SampleError naming it under "raise",
and the pipeline goes on correctly when the caller catches that error."""

from __future__ import annotations

import numpy as np
import pytest
from engine_fns import lock_on_17, unloadable_on_5
from guards import my_segments

import cpuwise.data as cd
from cpuwise.errors import SampleError


def drain(ds: cd.Dataset) -> tuple[list[int], list[SampleError]]:
    """Every item of an epoch, catching each SampleError and carrying on (as a training loop may)."""
    got: list[int] = []
    errors: list[SampleError] = []
    it = iter(ds)
    while True:
        try:
            x = next(it)
        except SampleError as exc:
            errors.append(exc)
            continue
        except StopIteration:
            return got, errors
        got.append(int(np.asarray(x).ravel()[0]))


def test_an_unpicklable_result_is_skipped_and_named() -> None:
    with cd.from_sequence(list(range(40))).map(lock_on_17, on_error="skip", workers=2,
                                               backend="process") as ds:
        assert [int(x[0]) for x in ds] == [i for i in range(40) if i != 17]
        entry = ds.stats()["stages"][-1]
        assert entry["skipped"] == ["17"] and entry["errors"] == 1
    assert my_segments() == []


def test_an_unpicklable_result_raises_naming_the_sample_and_the_rest_follows() -> None:
    with cd.from_sequence(list(range(40))).map(lock_on_17, workers=2, backend="process") as ds:
        got, errors = drain(ds)
        assert got == [i for i in range(40) if i != 17]
        assert len(errors) == 1 and errors[0].sample == "17"
        assert "could not be sent back from the worker process" in str(errors[0])
        assert "lock" in str(errors[0]).lower()
        got, errors = drain(ds)  # a second epoch is whole as well
        assert got == [i for i in range(40) if i != 17] and len(errors) == 1


def test_an_unpicklable_result_in_a_batch_pipeline_costs_one_sample() -> None:
    with cd.from_sequence(list(range(40))).map(lock_on_17, on_error="skip", workers=2,
                                               backend="process").batch(8) as ds:
        assert sorted(int(v) for b in ds for v in b[:, 0]) == [i for i in range(40) if i != 17]


def test_a_result_that_cannot_be_rebuilt_in_the_pipeline_process_costs_one_sample() -> None:
    with cd.from_sequence(list(range(12))).map(unloadable_on_5, workers=1, backend="process") as ds:
        got, errors = drain(ds)
        assert got == [i for i in range(12) if i != 5]
        assert len(errors) == 1 and errors[0].sample == "5" and "cannot be rebuilt" in str(errors[0])
    with cd.from_sequence(list(range(12))).map(unloadable_on_5, workers=1, backend="process",
                                               on_error="skip") as ds:
        assert list(ds) == [i for i in range(12) if i != 5]
        assert ds.stats()["stages"][-1]["skipped"] == ["5"]


@pytest.mark.parametrize("backend", ["thread", "inline"])
def test_backends_without_pickling_deliver_such_results(backend: str) -> None:
    out = list(cd.from_sequence(list(range(20))).map(lock_on_17, workers=1, backend=backend))
    assert len(out) == 20 and type(out[17]).__name__ == "lock"
