"""Resume from every position: exactly the undelivered samples, in order (testing.stages.check_resume)."""

from __future__ import annotations

import pytest
from engine_fns import Jitter, arange16, fail_on_7s, to_array

import cpuwise.data as cd
from cpuwise.errors import StateError
from cpuwise.testing.stages import check_resume, plain


def test_resume_every_position_sequential_stages() -> None:
    check_resume(lambda: cd.from_sequence(list(range(23))).shuffle(seed=2).filter(lambda x: x % 3 != 0)
                 .batch(4))


def test_resume_every_position_window_shuffle_iterable() -> None:
    check_resume(lambda: cd.from_iterable(lambda: iter(range(30))).shuffle(seed=1, buffer_size=7).batch(3))


def test_resume_every_position_threads_and_prefetch() -> None:
    def make() -> cd.Dataset:
        return (cd.from_sequence(list(range(41))).shuffle(seed=4).map(arange16, workers=3, backend="thread")
                .map(Jitter()).batch(5).prefetch(3))

    check_resume(make)
    check_resume(make, epoch=1, positions=[0, 3, 8, 9])
    check_resume(lambda: cd.from_sequence(list(range(23))).map(arange16, workers=2, backend="thread")
                 .shuffle(seed=2).batch(4).prefetch(2), epoch=1)


def test_resume_every_position_unbatched_skip_errors() -> None:
    def make() -> cd.Dataset:
        return cd.from_sequence(list(range(220))).map(fail_on_7s, workers=2, backend="thread",
                                                     on_error="skip").prefetch(4)

    ref = check_resume(make, positions=range(0, 219, 7))
    assert len(ref) == 217 and not {7, 107, 207} & set(ref)


def test_resume_every_position_processes_in_flight() -> None:
    """Process workers with chunks in flight and a prefetch thread running ahead."""
    shared = (cd.from_sequence(list(range(37))).shuffle(seed=9)
              .map(to_array, workers=2, backend="process").map(Jitter()).batch(4).prefetch(3))
    check_resume(lambda: shared, fresh=False)
    check_resume(lambda: shared, fresh=False, epoch=2, positions=[1, 5])
    shared.close()


def test_resume_into_a_fresh_process_pipeline() -> None:
    def make() -> cd.Dataset:
        return cd.from_sequence(list(range(60))).shuffle(seed=1).map(to_array, workers=2,
                                                                    backend="process").batch(7)

    check_resume(make, positions=[4])


def test_resume_with_repeat_and_cache(tmp_path) -> None:
    check_resume(lambda: cd.from_sequence(list(range(9))).shuffle(seed=0).repeat(3).batch(2))
    disk = tmp_path / "c"
    check_resume(lambda: cd.from_sequence(list(range(12))).map(arange16).cache(str(disk)).shuffle(seed=3)
                 .batch(5))


def test_state_after_an_epoch_is_the_next_epoch() -> None:
    ds = cd.from_sequence(list(range(10))).shuffle(seed=0)
    e0 = list(ds)
    sd = ds.state_dict()
    assert sd["epoch"] == 1 and sd["stages"] is None
    e1 = list(ds)
    ds2 = cd.from_sequence(list(range(10))).shuffle(seed=0)
    ds2.load_state_dict(sd)
    assert list(ds2) == e1 != e0


def test_mismatched_state_names_expected_and_found() -> None:
    sd = cd.from_sequence(list(range(10))).batch(2).state_dict()
    other = cd.from_sequence(list(range(10))).batch(3)
    with pytest.raises(StateError, match=r"expected stages: .*batch\(3\).*\n.*found stages: .*batch\(2\)"):
        other.load_state_dict(sd)
    with pytest.raises(StateError, match="version"):
        other.load_state_dict({**other.state_dict(), "version": 99})
    with pytest.raises(StateError):
        other.load_state_dict({"nope": 1})


def test_one_shot_iterator_cannot_resume() -> None:
    ds = cd.from_iterable(iter(range(5)))
    assert list(ds) == [0, 1, 2, 3, 4]
    with pytest.raises(StateError, match="factory"):
        list(ds)


def test_set_epoch_reproduces_an_epoch() -> None:
    ds = cd.from_sequence(list(range(30))).shuffle(seed=7).map(arange16).map(Jitter(), backend="inline")
    first = [plain(x) for x in ds]
    [plain(x) for x in ds]
    ds.set_epoch(0)
    assert [plain(x) for x in ds] == first


def test_a_superseded_iterator_says_so() -> None:
    from cpuwise.errors import PipelineError

    ds = cd.from_sequence(list(range(10))).prefetch(2)
    first = iter(ds)
    next(first)
    second = iter(ds)
    assert list(second) == list(range(10))
    with pytest.raises(PipelineError, match="newer iter"):
        next(first)
