"""Issue 3's benchmark: cpuwise.data vs the stock PyTorch recipe on this machine, in one run.

    python benchmarks/pipeline.py            # full: 2000 JPEGs, every num_workers 0..2x cores
    python benchmarks/pipeline.py --quick    # a fast sanity run

Anchor: the stock recipe (PIL open -> RandomResizedCrop(224) -> RandomHorizontalFlip -> ToTensor ->
Normalize) on a torch DataLoader at each num_workers from 0 to 2x cores; the best is the anchor.
torchvision does not import beside this CPU torch, so the recipe is written out with PIL + torch
exactly as torchvision does it (torch RNG, the same get_params, PIL bilinear resize, ToTensor's copy
and float divide, Normalize's clone + sub_ + div_). cpuwise runs with zero manual settings, and an
exhaustive sweep of its worker count checks the autotuned choice. Output: images/s and CPU-seconds
per image (process tree, workers included), JSON in benchmarks/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jpegs import folder_stats, make_jpeg_folder  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class StockFolder:
    """torchvision.datasets.ImageFolder + the stock training transforms, written out."""

    def __init__(self, root: Path, size: int = 224) -> None:
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        self.samples = [(str(p), i) for i, c in enumerate(classes) for p in sorted((root / c).glob("*.jpg"))]
        self.size = size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Any:
        import torch
        from PIL import Image

        path, label = self.samples[i]
        with open(path, "rb") as f:
            img = Image.open(f).convert("RGB")  # torchvision's pil_loader
        width, height = img.size  # RandomResizedCrop.get_params, torch RNG, as torchvision
        area = height * width
        log_ratio = torch.log(torch.tensor((3 / 4, 4 / 3)))
        box = None
        for _ in range(10):
            target_area = area * torch.empty(1).uniform_(0.08, 1.0).item()
            aspect = math.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1]).item())
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, size=(1,)).item())
                left = int(torch.randint(0, width - w + 1, size=(1,)).item())
                box = (top, left, h, w)
                break
        if box is None:
            s = min(height, width)
            box = ((height - s) // 2, (width - s) // 2, s, s)
        top, left, h, w = box
        img = img.crop((left, top, left + w, top + h))
        img = img.resize((self.size, self.size), Image.Resampling.BILINEAR)
        if torch.rand(1) < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        t = torch.from_numpy(np.array(img, np.uint8, copy=True)).view(img.size[1], img.size[0], 3)
        t = t.permute((2, 0, 1)).contiguous().to(dtype=torch.float32).div(255)  # ToTensor
        t = t.clone()  # Normalize(inplace=False)
        mean = torch.as_tensor(MEAN).view(-1, 1, 1)
        std = torch.as_tensor(STD).view(-1, 1, 1)
        return t.sub_(mean).div_(std), label


def tree_cpu() -> dict[int, float]:
    """CPU seconds of this process and every live descendant, by pid."""
    me = psutil.Process()
    out = {}
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def measure(make_iter: Any, warmup_items: int, items: int) -> dict[str, float]:
    """Images/s and CPU-s/image over `items` images after `warmup_items` (startup excluded)."""
    it = make_iter()
    seen = 0
    while seen < warmup_items:
        seen += len(next(it)[1])
    me = psutil.Process()
    c0, ch0 = tree_cpu(), me.cpu_times()
    t0 = time.perf_counter()
    n = 0
    while n < items:
        try:
            n += len(next(it)[1])
        except StopIteration:
            break
    wall = time.perf_counter() - t0
    c1, ch1 = tree_cpu(), me.cpu_times()
    cpu = sum(v - c0.get(pid, 0.0) for pid, v in c1.items())
    cpu += (ch1.children_user - ch0.children_user) + (ch1.children_system - ch0.children_system)
    del it
    return {"images": n, "seconds": round(wall, 3), "img_s": round(n / wall, 1),
            "cpu_s_per_img": round(cpu / n, 6), "cores_busy": round(cpu / wall, 2)}


def stock_run(root: Path, workers: int, batch: int, warm: int, items: int) -> dict[str, float]:
    import torch

    ds = StockFolder(root)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0, drop_last=False)

    def forever() -> Any:
        while True:
            yield from loader

    return measure(forever, warm, items)


def cpuwise_ds(root: Path, batch: int, workers: int | str = "auto") -> Any:
    import cpuwise.data as cd

    return (cd.from_folder(str(root)).shuffle(seed=0)
            .map(cd.image.decode_crop(224), workers=workers)
            .map(cd.image.random_flip(), workers=workers)
            .batch(batch).prefetch())


def cpuwise_run(root: Path, batch: int, warm: int, items: int, workers: int | str = "auto"
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    ds = cpuwise_ds(root, batch, workers).repeat()
    res = measure(lambda: iter(ds), warm, items)
    return res, ds.stats()


def grain_run(root: Path, batch: int, warm: int, items: int) -> dict[str, Any] | None:
    try:
        import grain.python as gp  # type: ignore[import-not-found]
    except ImportError:
        return None
    import cpuwise.data.image as ci

    files = StockFolder(root).samples
    crop, flip = ci.decode_crop(224), ci.random_flip()

    class Aug(gp.RandomMapTransform):  # type: ignore[misc]
        def random_map(self, x: Any, rng: np.random.Generator) -> Any:
            return flip(crop(x, rng), rng)

    ds = (gp.MapDataset.source(files).shuffle(seed=0).repeat().random_map(Aug(), seed=0)
          .batch(batch).to_iter_dataset(gp.ReadOptions(num_threads=0))
          .mp_prefetch(gp.MultiprocessingOptions(num_workers=psutil.cpu_count() or 1)))
    return measure(lambda: iter(ds), warm, items)


def per_core(root: Path, n: int) -> dict[str, float]:
    """Images per CPU-second in this one process (torch threads = 1): the recipes' own cost, robust to
    other load on a shared machine because it counts CPU time, not wall time."""
    import torch

    import cpuwise.data.image as ci
    from cpuwise.data.transform import sample_rng

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    stock = StockFolder(root)
    crop, flip = ci.decode_crop(224), ci.random_flip()
    crop(stock.samples[0], sample_rng(0, 0, 0))  # calibrate the decoder outside the timing
    def ours(i: int) -> Any:
        rng = sample_rng(0, 0, i)
        return flip(crop(stock.samples[i], rng), rng)

    out = {}
    for name, fn in (("stock", stock.__getitem__), ("cpuwise", ours)):
        t0 = time.process_time()
        for i in range(n):
            fn(i % len(stock))
        out[f"{name}_img_per_cpu_s"] = round(n / (time.process_time() - t0), 1)
    out["ratio"] = round(out["cpuwise_img_per_cpu_s"] / out["stock_img_per_cpu_s"], 3)
    torch.set_num_threads(threads)  # the stock num_workers=0 run keeps torch's default, as users run it
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="400 images, fewer configs: a sanity run")
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--data", default="/tmp/cpuwise-bench-jpegs")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "pipeline.json"))
    args = ap.parse_args()
    from cpuwise.host import host_facts, usable_cores

    cores = usable_cores()
    n = args.images or (400 if args.quick else 2000)
    batch = 64
    root = make_jpeg_folder(Path(args.data) / f"n{n}", n=n)
    warm, items = (128, 384) if args.quick else (256, 2 * n)
    print(f"data: {folder_stats(root)}; {cores} usable cores", flush=True)

    core = per_core(root, 150 if args.quick else 500)
    print(f"per core (CPU time, 1 thread): {core}", flush=True)
    stock: dict[str, Any] = {}
    for w in range(0, 2 * cores + 1):
        stock[str(w)] = stock_run(root, w, batch, warm, items)
        print(f"stock num_workers={w}: {stock[str(w)]}", flush=True)
    best_w = max(stock, key=lambda k: stock[k]["img_s"])
    best = stock[best_w]

    auto, auto_stats = cpuwise_run(root, batch, warm, items)
    print(f"cpuwise auto: {auto} config={auto_stats.get('config')}", flush=True)
    sweep: dict[str, Any] = {}
    for w in range(1, 2 * cores + 1):
        sweep[str(w)], _ = cpuwise_run(root, batch, warm, items, workers=w)
        print(f"cpuwise workers={w}: {sweep[str(w)]}", flush=True)
    sweep_best = max(sweep, key=lambda k: sweep[k]["img_s"])
    grain = grain_run(root, batch, warm, items)
    print(f"grain: {grain if grain is not None else 'not installed (skipped)'}", flush=True)

    speed = auto["img_s"] / best["img_s"]
    cpu_ratio = auto["cpu_s_per_img"] / best["cpu_s_per_img"]
    within = auto["img_s"] / sweep[sweep_best]["img_s"]
    result = {
        "benchmark": "pipeline", "quick": args.quick, "machine": host_facts().to_dict(),
        "data": folder_stats(root), "batch": batch,
        "note": "cpuwise yields uint8 NHWC (normalisation happens on the device in the adapter); the stock "
                "recipe yields normalised float32 NCHW, as torchvision's does. Shared machine: noisy.",
        "per_core": core, "stock": stock, "stock_best_workers": int(best_w),
        "cpuwise_auto": auto, "cpuwise_auto_config": auto_stats.get("config"),
        "cpuwise_auto_decisions": auto_stats.get("decisions", [])[-5:],
        "cpuwise_sweep": sweep, "cpuwise_sweep_best_workers": int(sweep_best), "grain": grain,
        "ratios": {"img_s_vs_best_stock": round(speed, 3), "cpu_s_per_img_vs_best_stock": round(cpu_ratio, 3),
                   "auto_vs_sweep_best": round(within, 3)},
        "targets": {"img_s_vs_best_stock >= 1.5": speed >= 1.5,
                    "cpu_s_per_img_vs_best_stock <= 0.5": cpu_ratio <= 0.5,
                    "auto within 10 % of sweep best": within >= 0.9},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"\n{'config':<28}{'img/s':>9}{'CPU-s/img':>12}")
    for w, r in stock.items():
        print(f"{'stock num_workers=' + w:<28}{r['img_s']:>9.0f}{r['cpu_s_per_img']:>12.5f}")
    for w, r in sweep.items():
        print(f"{'cpuwise workers=' + w:<28}{r['img_s']:>9.0f}{r['cpu_s_per_img']:>12.5f}")
    print(f"{'cpuwise auto':<28}{auto['img_s']:>9.0f}{auto['cpu_s_per_img']:>12.5f}")
    print(f"per core: {core}")
    print(f"ratios: {result['ratios']}  targets: {result['targets']}  -> {out}")


if __name__ == "__main__":
    main()
