"""Short human names for functions and samples (used in stage names and error messages)."""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np


def fn_name(fn: Any) -> str:
    """`decode_crop`, `MyTransform`, `<lambda>`: what a user recognises in stats and errors."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__name__", None) or getattr(fn, "__qualname__", None)
    return str(name) if name else type(fn).__name__


def sample_name(sample: Any, limit: int = 200) -> str:
    """The file path of a sample when it has one, else a short repr."""
    head = sample[0] if isinstance(sample, (tuple, list)) and sample else sample
    if isinstance(sample, dict):
        for key in ("path", "file", "filename", "name", "id"):
            if key in sample:
                head = sample[key]
                break
    if isinstance(head, os.PathLike):
        head = os.fspath(head)
    if isinstance(head, str):
        return head if len(head) <= limit else head[: limit - 3] + "..."
    if isinstance(head, np.ndarray):
        return f"<array shape={head.shape} dtype={head.dtype}>"
    if isinstance(head, (bytes, bytearray, memoryview)):
        return f"<{len(head)} bytes>"
    text = repr(sample)
    return text if len(text) <= limit else text[: limit - 3] + "..."
