"""The resume contract every cpuwise.data pipeline stage passes; run it on your own pipelines too.

    from cpuwise.testing.stages import check_stage_resume
    check_stage_resume(lambda: cd.from_sequence(list(range(20))).shuffle(seed=0).batch(3))

A state saved after k delivered items and loaded into a freshly built pipeline must yield exactly
the items not yet delivered, in the same order; the epoch after it must follow as it would have.
`check_stage_resume` checks that the way torchdata's `run_test_save_load_state` does (mid-epoch,
in the next epoch, from the start, and at an epoch's end); `check_resume` checks every position of
one epoch. cpuwise's own suite runs `check_stage_resume` on every registered stage
(tests/data/stages/test_stage_contract.py), so a new stage cannot skip it.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from cpuwise.data.dataset import Dataset

MakeDataset = Callable[[], Dataset]


def plain(x: Any) -> Any:
    """A comparable form of a sample or batch (arrays become (dtype, shape, bytes))."""
    if isinstance(x, np.ndarray):
        return ("ndarray", str(x.dtype), x.shape, x.tobytes())
    if isinstance(x, (tuple, list)):
        return tuple(plain(v) for v in x)
    if isinstance(x, dict):
        return tuple(sorted((k, plain(v)) for k, v in x.items()))
    if isinstance(x, np.generic):
        return x.item()
    return x


def _take(it: Iterator[Any], k: int) -> list[Any]:
    return [plain(next(it)) for _ in range(k)]


def _saved(state: dict[str, Any]) -> dict[str, Any]:
    """`state` as it comes back from a checkpoint file: the contract includes that it pickles."""
    return dict(pickle.loads(pickle.dumps(state)))


def check_resume(make: MakeDataset, positions: Iterable[int] | None = None, epoch: int = 0,
                 fresh: bool = True) -> list[Any]:
    """Assert resume-exactness at every position in `positions` (default: all, 0..len).

    Args:
        make: builds the pipeline (a cpuwise.data Dataset).
        epoch: resume inside this epoch (earlier epochs are iterated first).
        fresh: restore into a newly built pipeline (True) or the same object (cheaper with
            process pools: the warm workers are reused, the stages are still rebuilt).
    Returns the reference items of `epoch`.
    """
    ref_ds = make()
    if fresh:
        for _ in range(epoch):
            for _ in ref_ds:
                pass
    else:
        ref_ds.set_epoch(epoch)
    reference = [plain(x) for x in ref_ds]
    if fresh:
        ref_ds.close()
    ks = range(len(reference) + 1) if positions is None else positions
    shared = None if fresh else make()
    for k in ks:
        ds = make() if fresh else shared
        assert ds is not None
        if not fresh:
            ds.set_epoch(epoch)
        else:
            for _ in range(epoch):
                for _ in ds:
                    pass
        it = iter(ds)
        head = _take(it, k)
        state = _saved(ds.state_dict())
        if fresh:
            ds.close()
            ds = make()
        ds.load_state_dict(state)
        rest = [plain(x) for x in ds]
        assert head == reference[:k], f"the first {k} items differ from the reference"
        assert head + rest == reference, (
            f"resume after {k} items: expected the {len(reference) - k} remaining items in order, "
            f"found {len(rest)} items "
            f"({'different content/order' if len(rest) == len(reference) - k else 'wrong count'})"
        )
        if fresh:
            ds.close()
    if shared is not None:
        shared.close()
    return reference


def _epoch(ds: Dataset, midpoint: int | None) -> tuple[list[Any], int, dict[str, Any], dict[str, Any]]:
    """One epoch of `ds`: (items, k, state after k items, state after the last item)."""
    items = [plain(x) for x in ds]
    k = len(items) // 2 if midpoint is None else min(midpoint, len(items))
    ds.set_epoch(ds.state_dict()["epoch"] - 1)  # the same epoch again, saved after k items
    it = iter(ds)
    again = _take(it, k)
    mid = _saved(ds.state_dict())
    again += [plain(x) for x in it]
    assert again == items, "an epoch run twice (set_epoch) gave different items: the pipeline is not " \
                           "deterministic for its seed and epoch, so no state can resume it"
    return items, k, mid, _saved(ds.state_dict())


def check_stage_resume(make_dataset: MakeDataset, midpoint: int | None = None) -> None:
    """Assert the resume contract on the pipeline `make_dataset()` builds (see the module docstring).

    Every restore goes into a newly built pipeline, so nothing carries over but the state dict:
    1. mid-epoch: a state saved after `midpoint` items (default: half the epoch) yields the rest of
       the epoch, and the epoch after it yields what epoch 1 yields;
    2. mid-epoch in the next epoch: the same, inside epoch 1;
    3. from the start: the state of a pipeline never iterated yields epoch 0, then epoch 1;
    4. at an epoch's end: the state saved after epoch 0's last item yields epoch 1.

    Args:
        make_dataset: builds the pipeline; each call must build the same one (same seeds).
        midpoint: items delivered before the mid-epoch states are saved.
    """
    ds = make_dataset()
    initial = _saved(ds.state_dict())
    epoch0, k0, mid0, end0 = _epoch(ds, midpoint)
    epoch1, k1, mid1, _ = _epoch(ds, midpoint)
    ds.close()

    def restored(state: dict[str, Any], what: str, *expected: list[Any]) -> None:
        again = make_dataset()
        again.load_state_dict(state)
        for n, want in enumerate(expected):
            got = [plain(x) for x in again]
            assert got == want, (
                f"{what}, iteration {n + 1} after the restore: expected {len(want)} items in order, found "
                f"{len(got)} ({'different content/order' if len(got) == len(want) else 'wrong count'})"
            )
        again.close()

    restored(mid0, f"resume after {k0} items of epoch 0", epoch0[k0:], epoch1)
    restored(mid1, f"resume after {k1} items of epoch 1", epoch1[k1:])
    restored(initial, "resume from a state saved before the first item", epoch0, epoch1)
    restored(end0, "resume from a state saved after the last item of epoch 0", epoch1)
