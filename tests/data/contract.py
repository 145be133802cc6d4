"""The shared resume contract every stage and pipeline must pass (torchdata-style).

Save the state after k delivered items, restore it into a pipeline built the same way, and the
restored pipeline must yield exactly the items that were not yet delivered, in the same order.

    from tests.data.contract import check_resume        # or: from contract import check_resume
    check_resume(lambda: cd.from_sequence(range(10)).shuffle(seed=1).batch(3))
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np


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


def take(it: Any, k: int) -> list[Any]:
    out = []
    for _ in range(k):
        out.append(plain(next(it)))
    return out


def check_resume(make: Callable[[], Any], positions: Iterable[int] | None = None, epoch: int = 0,
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
    if hasattr(ref_ds, "close") and fresh:
        ref_ds.close()
    ks = range(len(reference) + 1) if positions is None else positions
    shared = None if fresh else make()
    for k in ks:
        ds = make() if fresh else shared
        if not fresh:
            ds.set_epoch(epoch)
        else:
            for _ in range(epoch):
                for _ in ds:
                    pass
        it = iter(ds)
        head = take(it, k)
        state = pickle.loads(pickle.dumps(ds.state_dict()))
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
