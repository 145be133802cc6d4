"""Do pruned / low-rank / distilled CNNs run faster in ONNX Runtime on this CPU? (batch 1 and batch 32)

Each variant is exported to ONNX (dynamic batch), loaded in an InferenceSession with the usable cores as
intra-op threads, and timed round-robin with the original (interleaved, so machine-load drift hits all
variants alike); medians are reported with the speed-up vs the original measured in the same run.

    python benchmarks/torch_passes.py [--quick] [--out benchmarks/results/torch_passes.json]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from cpuwise.host import host_facts, usable_cores
from cpuwise.optimize.passes import PassContext
from cpuwise.optimize.passes.distill import DistillPass
from cpuwise.optimize.passes.lowrank import LowRankPass
from cpuwise.optimize.passes.prune import PrunePass
from cpuwise.zoo.digits import accuracy, load_digits_data, train_digits_cnn
from cpuwise.zoo.efficientnet_lite0 import load_efficientnet_lite0


def session(model: torch.nn.Module, x: torch.Tensor, threads: int):
    import onnxruntime as ort

    buf = io.BytesIO()
    torch.onnx.export(
        model.eval(),
        (x,),
        buf,
        dynamo=False,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])


def time_round_robin(sessions: dict, x: np.ndarray, rounds: int, warmup: int = 3) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(warmup):
        for s in sessions.values():
            s.run(None, {"x": x})
    for _ in range(rounds):
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {"x": x})
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def digits_variants(quick: bool) -> tuple[dict, dict, np.ndarray]:
    model, acc = train_digits_cnn(seed=0)
    xtr, ytr, xte, yte = load_digits_data()

    def batches():
        for i in range(0, len(xtr), 64):
            yield (torch.from_numpy(xtr[i : i + 64]),), None

    ctx = PassContext(example_inputs=(torch.from_numpy(xte[:8]),), train_batches=batches, task="classifier")
    from cpuwise.optimize.passes._torchutil import count_macs, count_params

    variants = {
        "original": (
            model,
            {
                "params_after": count_params(model),
                "macs_after": count_macs(model, (torch.from_numpy(xte[:8]),)),
            },
        )
    }
    for name, p in [
        ("prune_0.25", PrunePass(0.25, finetune_epochs=3)),
        ("prune_0.5", PrunePass(0.5, finetune_epochs=3)),
        ("lowrank_0.9", LowRankPass(0.9, max_mac_fraction=1.0)),
        ("distill_w0.5", DistillPass(width=0.5, epochs=4)),
    ]:
        r = p.run(model, ctx)
        variants[name] = (r.model, r.params)
    info = {
        k: {
            "test_accuracy": accuracy(m, xte, yte),
            "params": p.get("params_after"),
            "macs_per_8_images": p.get("macs_after"),
        }
        for k, (m, p) in variants.items()
    }
    return variants, info, xte


def effnet_variants(quick: bool) -> tuple[dict, dict]:
    model = load_efficientnet_lite0()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    ctx = PassContext(example_inputs=(x,), task="classifier")
    from cpuwise.optimize.passes._torchutil import count_macs, count_params

    variants = {
        "original": (model, {"params_after": count_params(model), "macs_after": count_macs(model, (x,))})
    }
    plans = [
        ("prune_0.25", PrunePass(0.25)),
        ("prune_0.5", PrunePass(0.5)),
        ("lowrank_0.95", LowRankPass(0.95, max_mac_fraction=1.0)),
        ("lowrank_0.9", LowRankPass(0.9, max_mac_fraction=1.0)),
        ("lowrank_0.8_frac0.8", LowRankPass(0.8)),
    ]
    for name, p in plans[:3] if quick else plans:
        r = p.run(model, ctx)
        variants[name] = (r.model, r.params)
    info = {
        k: {"params": p.get("params_after"), "macs_per_image": p.get("macs_after")}
        for k, (_m, p) in variants.items()
    }
    return variants, info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/torch_passes.json")
    args = ap.parse_args()
    threads = max(1, int(usable_cores()))
    torch.manual_seed(0)
    out: dict = {
        "host": host_facts(),
        "ort_threads": threads,
        "note": "medians, round-robin; noisy if shared",
    }

    dv, dinfo, xte = digits_variants(args.quick)
    dsess = {k: session(m, torch.from_numpy(xte[:1]), threads) for k, (m, _p) in dv.items()}
    res = {}
    for bs, rounds in ((1, 200 if args.quick else 1000), (32, 50 if args.quick else 300)):
        ms = time_round_robin(dsess, xte[:bs], rounds)
        res[f"batch{bs}_ms"] = ms
        res[f"batch{bs}_speedup"] = {k: ms["original"] / v for k, v in ms.items()}
    out["digits"] = {"variants": dinfo, **res}
    print(json.dumps(out["digits"], indent=1))

    ev, einfo = effnet_variants(args.quick)
    x1 = torch.randn(32, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    esess = {k: session(m, x1[:1], threads) for k, (m, _p) in ev.items()}
    res = {}
    for bs, rounds in ((1, 10 if args.quick else 40), (32, 2 if args.quick else 6)):
        ms = time_round_robin(esess, x1[:bs].numpy(), rounds, warmup=1)
        res[f"batch{bs}_ms"] = ms
        res[f"batch{bs}_speedup"] = {k: ms["original"] / v for k, v in ms.items()}
    out["efficientnet_lite0"] = {"variants": einfo, **res}
    print(json.dumps(out["efficientnet_lite0"], indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
