"""Map functions for the Ray tests: Ray workers import them by name (tests/data is on their path)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


def times10(x: int) -> int:
    return x * 10


def fail_on_7s(x: int) -> int:
    if x % 10 == 7:
        raise ValueError(f"corrupt sample {x}")
    return x


def big_enough(sample: tuple[np.ndarray, int]) -> bool:
    return int(sample[0][0]) % 3 != 0


class KillMe:
    """Runs `victim` once to the point where the test kills its worker process (SIGKILL), then
    normally when Ray retries the task. Each attempt appends its pid to `folder/attempts`; the first
    writes `folder/running` and waits to be killed."""

    def __init__(self, folder: str, victim: int) -> None:
        self.folder, self.victim = Path(folder), victim

    def __call__(self, x: int) -> int:
        if x == self.victim:
            with open(self.folder / "attempts", "a") as f:
                f.write(f"{os.getpid()}\n")
            if len((self.folder / "attempts").read_text().split()) == 1:
                (self.folder / "running").write_text(str(os.getpid()))
                deadline = time.monotonic() + 300  # the test kills this process long before
                while time.monotonic() < deadline:
                    time.sleep(0.05)
                raise RuntimeError("expected to be killed by the test")
        return x * 10
