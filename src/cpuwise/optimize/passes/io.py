"""The io pass: pad each batch only to its longest real row (bucketed), in length-sorted batches, and for
throughput pick the batch size.

Runs first when the model has a sequence input: shorter inputs make every later measurement cheaper,
and the padding it chooses is what every later candidate is measured (and served) with when it wins.
For the throughput target it also measures batch sizes around the one asked for (16, 32, 64): how many
rows go into one call is an I/O choice the predictor makes, like the padding.
"""

from __future__ import annotations

from cpuwise.optimize.io import IOConfig
from cpuwise.optimize.passes.base import Basis, Outcome, Pass, Plan
from cpuwise.optimize.search.judge import Judge

BATCH_SIZES = (16, 32, 64)  # the sizes sentence-transformers users try; the asked-for size is added


def io_label(io: IOConfig, target: str) -> str:
    """How a composition names its I/O stage."""
    sizes = f" batches of {io.batch_size}" if target == "throughput" else ""
    if io.dynamic_padding:
        return f"dynamic padding (/{io.bucket_multiple}), length-sorted{sizes}"
    return sizes.strip()


class IoPass(Pass):
    """Dynamic padding with length buckets on the FP32 graph (lossless), at the best batch size."""

    name = "io"
    needs = frozenset({"onnx", "sequence"})

    def propose(self, basis: Basis, plan: Plan, judge: Judge) -> Outcome:
        sizes = [plan.batch_size]
        if plan.target == "throughput" and not plan.quick:
            sizes = sorted(set(BATCH_SIZES) | {plan.batch_size})
        out = Outcome()
        for bs in sizes:
            dyn = IOConfig(dynamic_padding=True, batch_size=bs)
            note = f"pad each batch to its longest row (multiple of {dyn.bucket_multiple}), sorted by length"
            parts = basis.parts | {"io": io_label(dyn, plan.target)}
            out.candidates.append(judge.measure_file("", self.name, basis.graph, basis.settings, dyn,
                                                     runtime=basis.rt, parts=parts, parent=basis.best.name,
                                                     notes=[note]))
        return out
