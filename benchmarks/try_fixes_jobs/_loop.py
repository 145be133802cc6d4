"""The measurement loop of the --try-fixes benchmark's jobs, the same way a trial measures: from the entry of
delivery WARMUP to the entry of delivery WARMUP + BENCH_STEPS, the samples of the batches trained between.
Without BENCH_STEPS the loop runs until `cpuwise doctor --try-fixes` stops it. Prints one line
`BENCH_RESULT {"samples_per_s": ...}`."""

import json
import os
import sys
import time

WARMUP = 5


def run(batches, train_step) -> None:
    steps = int(os.environ.get("BENCH_STEPS", "0")) or sys.maxsize
    samples, t0 = 0, 0.0
    it = iter(batches)
    k = 0
    while True:
        t_enter = time.perf_counter()
        if k == WARMUP:
            t0 = t_enter
        if k >= WARMUP + steps:
            break
        x, y = next(it)
        if k >= WARMUP:
            samples += len(y)
        train_step(x, y)
        k += 1
    seconds = time.perf_counter() - t0
    print("BENCH_RESULT " + json.dumps({"samples_per_s": samples / seconds, "steps": steps,
                                        "seconds": seconds}), flush=True)


def epochs(loader):
    while True:
        yield from loader


def synthetic(x, y):
    """The hand-written synthetic-data version: one batch of the job's shape, every step."""
    while True:
        yield x, y
