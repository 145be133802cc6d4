"""The same image pipeline run locally and through Ray Data (`ds.to_ray()`), and the capacity plan.

    PYTHONPATH=src python benchmarks/ray_data.py            # 2000 JPEGs, 3 epochs each way
    PYTHONPATH=src python benchmarks/ray_data.py --quick    # a fast sanity run
    PYTHONPATH=src python benchmarks/ray_data.py --address auto   # on a running Ray cluster

Pipeline: from_folder -> shuffle -> map(decode_crop(224)) -> map(random_flip) -> batch(64), the
decode at reduced scale to uint8 (cpuwise's own ops). Local: cpuwise's engine, autotuned within the
machine's cores. Ray: the same Dataset through `to_ray()` on `ray.init(num_cpus=<usable cores>)`
(or --address), consumed with `cd.from_ray()`. Each epoch is timed from its first `next()` (so the
Ray numbers include building the listing, probing the stages and starting the tasks: what a
training epoch pays); the best epoch counts. Overhead ratio = local img/s / Ray img/s, on one
machine, where Ray can only add scheduling and object-store copies; on a cluster Ray adds nodes.

Also writes the capacity plan for the reference figures in DESIGN.md (8 H100s on ResNet-50 at 3993
img/s each, 16-core nodes) with the per-core rates measured there and the one measured here.
Output: benchmarks/results/ray_data.json. Numbers from different machines do not compare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jpegs import folder_stats, make_jpeg_folder  # noqa: E402

# DESIGN.md reference measurements (H100 + 16 cores, 2026-11-22)
H100_RESNET50_IMG_S = 3993  # one H100, ResNet-50 bf16 channels_last batch 256, synthetic data
GPUS_PER_NODE = 8
NODE_CORES = 16
PER_CORE = {  # img/s per core, RandomResizedCrop 224 from the same JPEGs, torch threads = 1
    "stock torchvision recipe (PIL, float normalise)": 266,
    "Pillow draft decode to uint8": 359,
    "OpenCV imdecode + crop + resize to uint8 (cpuwise)": 904,
}


def pipeline(root: Path) -> Any:
    import cpuwise.data as cd

    return (cd.from_folder(root).shuffle(seed=0).map(cd.image.decode_crop(224), on_error="skip")
            .map(cd.image.random_flip()).batch(64))


def timed_epochs(make_iter: Any, epochs: int) -> list[dict[str, float]]:
    out = []
    for e in range(epochs):
        t0 = time.perf_counter()
        n = 0
        for images, _labels in make_iter(e):
            n += len(images)
        out.append({"epoch": e, "images": n, "seconds": round(time.perf_counter() - t0, 3),
                    "img_s": round(n / (time.perf_counter() - t0), 1)})
        print(f"  epoch {e}: {n} images, {out[-1]['img_s']:,.0f} img/s")
    return out


def h100_plan(measured_per_core: float | None) -> dict[str, Any]:
    from cpuwise._scaleout import capacity_plan

    target = GPUS_PER_NODE * H100_RESNET50_IMG_S
    rates = dict(PER_CORE)
    if measured_per_core:
        rates["this pipeline, measured on this machine"] = measured_per_core
    plans = {}
    print(f"\nCapacity plan: {GPUS_PER_NODE} H100s x {H100_RESNET50_IMG_S} img/s = {target:,} img/s "
          f"(ResNet-50, DESIGN.md), nodes of {NODE_CORES} cores, {GPUS_PER_NODE} cores kept for the ranks")
    for name, per_core in rates.items():
        plan = capacity_plan([(name, "map", 1.0 / per_core)], target_samples_s=target,
                             usable_cores=NODE_CORES, reserved_cores=GPUS_PER_NODE, cores_per_node=NODE_CORES)
        plans[name] = {"img_s_per_core": per_core, "cores_needed": round(plan.cores_needed or 0, 1),
                       "nodes_needed": plan.nodes_needed, "gpu_node_spare_cores": plan.cores_here,
                       "gpu_node_feeds_img_s": round(plan.samples_s_here)}
        print(f"  {name:<52} {per_core:>5.0f} img/s/core -> {plan.cores_needed:6.1f} cores = "
              f"{plan.nodes_needed} nodes of {NODE_CORES} (the GPU node's {plan.cores_here:g} spare cores "
              f"feed {plan.samples_s_here:,.0f} img/s)")
    return {"target_img_s": target, "node_cores": NODE_CORES, "plans": plans}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--address", default=None, help="a running Ray cluster (default: a local Ray)")
    ap.add_argument("--out", default="benchmarks/results/ray_data.json")
    args = ap.parse_args()
    import ray
    import ray.data

    import cpuwise.data as cd
    from cpuwise.data.adapters.ray import ray_plan
    from cpuwise.host import host_facts, usable_cores

    n = 256 if args.quick else args.images
    epochs = 2 if args.quick else args.epochs
    root = make_jpeg_folder(Path(tempfile.gettempdir()) / f"cpuwise-jpegs-{n}", n=n)
    cores = usable_cores()
    print(f"{n} JPEGs, {cores} usable cores")

    print("local (cpuwise engine):")
    local_ds = pipeline(root)
    local = timed_epochs(lambda e: (local_ds.set_epoch(e), local_ds)[1], epochs)
    stats = local_ds.stats()
    local_ds.close()
    work = sum(s["time_s"] for s in stats["stages"] if s["kind"] not in ("prefetch", "pad"))
    delivered = next((s["items"] for s in stats["stages"] if s["kind"] == "map"), 0)
    per_core = delivered / work if work > 0 else None

    tmp = None
    if args.address is None:  # a local Ray with its files in a folder removed afterwards
        tmp = tempfile.mkdtemp(prefix="cw-ray-")
        os.environ.setdefault("RAY_TMPDIR", tmp)
        os.makedirs(os.path.join(os.environ["RAY_TMPDIR"], "ray"), exist_ok=True)
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    else:
        ray.init(address=args.address, log_to_driver=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        print(f"Ray Data ({ray.cluster_resources().get('CPU', 0):g} CPUs):")
        ray_ds = pipeline(root)
        plans: list[Any] = []

        def ray_epoch(e: int) -> Any:
            made = ray_ds.to_ray(epoch=e)
            plans[:] = ray_plan(made)
            return cd.from_ray(made)

        on_ray = timed_epochs(ray_epoch, epochs)
    finally:
        ray.shutdown()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    best_local = max(e["img_s"] for e in local)
    best_ray = max(e["img_s"] for e in on_ray)
    ratio = best_local / best_ray if best_ray else float("inf")
    print(f"\nbest epoch: local {best_local:,.0f} img/s, Ray {best_ray:,.0f} img/s: overhead ratio "
          f"{ratio:.2f}x (local / Ray, one machine)")
    for p in plans:
        print(f"  Ray stage {p.name}: batch {p.batch_size}, {p.concurrency} task(s), "
              f"{1000 * p.per_item_s:.2f} ms/item measured")
    result = {
        "benchmark": "ray_data", "quick": args.quick, "data": folder_stats(root), "epochs": epochs,
        "address": args.address or "local", "local": local, "ray": on_ray,
        "best_local_img_s": best_local, "best_ray_img_s": best_ray, "overhead_ratio": round(ratio, 3),
        "ray_stages": [p.__dict__ for p in plans], "measured_img_s_per_core": per_core,
        "h100_capacity_plan": h100_plan(per_core), "host": host_facts().to_dict(),
        "note": "machine may be shared/noisy; compare only within one run",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
