"""Nested samples and batches: tuples, lists and dicts of leaves (arrays, tensors, numbers, paths).

One walker for every place that applies a function to, or reads, each leaf of a sample or batch
(the adapters' conversions, the byte estimate the autotuner uses). Containers are rebuilt as plain
tuples, lists and dicts: a namedtuple of a user's script becomes a tuple, which a worker process can
always send back (its class may not be importable there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

OTHER_BYTES = 64  # the byte estimate of a leaf that is not an array (an int, a path)


def map_leaves(fn: Callable[[Any], Any], tree: Any) -> Any:
    """`tree` with every leaf replaced by `fn(leaf)`, containers rebuilt around them.

    Example: map_leaves(torch.from_numpy, (images, {"label": labels}))
    """
    if isinstance(tree, tuple):
        return tuple(map_leaves(fn, t) for t in tree)
    if isinstance(tree, list):
        return [map_leaves(fn, t) for t in tree]
    if isinstance(tree, dict):
        return {k: map_leaves(fn, v) for k, v in tree.items()}
    return fn(tree)


def leaves(tree: Any) -> Iterator[Any]:
    """The leaves of `tree`, depth first, in order (dict values in insertion order)."""
    if isinstance(tree, tuple | list):
        for t in tree:
            yield from leaves(t)
    elif isinstance(tree, dict):
        for t in tree.values():
            yield from leaves(t)
    else:
        yield tree


def nbytes(tree: Any) -> int:
    """Approximate bytes of a sample: arrays (anything with .nbytes) exactly, other leaves 64 each."""
    return sum(int(x.nbytes) if hasattr(x, "nbytes") else OTHER_BYTES for x in leaves(tree))
