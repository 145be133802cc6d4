"""Issue 5's benchmark: keep a GPU fed from JPEGs. Runs on a CUDA machine with torchvision, in one run.

    PYTHONPATH=src python benchmarks/gpu_feed.py --out results/gpu_feed.json [--quick]

For ResNet-50 and ResNet-18 (torchvision.models, random init, bf16 autocast, channels_last, batch
256, SGD): the synthetic-data rate (one batch reused), the stock torchvision recipe on a DataLoader
at 4/8/16 workers, and cpuwise CPU-only (the pipeline's workers decode), GPU-only (nvJPEG) and auto
(GpuLoader measures both sides and picks cpu / gpu / hybrid, and says why). Each run records img/s,
mean GPU utilisation (NVML) and mean CPU utilisation of the whole machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jpegs import folder_stats, make_jpeg_folder  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BATCH = 256


class Sampler:
    """Mean GPU utilisation (NVML, else torch.cuda.utilization) and CPU utilisation over a window."""

    def __init__(self) -> None:
        self.gpu: list[float] = []
        self.stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            h = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.read = lambda: float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)
            self.source = "nvml"
        except Exception:
            import torch

            self.read = lambda: float(torch.cuda.utilization())
            self.source = "torch.cuda.utilization"

    def __enter__(self) -> Sampler:
        psutil.cpu_percent(None)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            self.gpu.append(self.read())

    def __exit__(self, *exc: object) -> None:
        self.cpu = psutil.cpu_percent(None)
        self.stop.set()
        self.thread.join()


def make_model(name: str) -> tuple[Any, Any]:
    import torch
    import torchvision

    model = getattr(torchvision.models, name)(weights=None).cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x: Any, y: Any) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return model, step


def run(batches: Any, step: Any, warmup: int, window_s: float, to_device: bool = False) -> dict[str, Any]:
    """Train on `batches`: `warmup` steps, then as many steps as fit in `window_s` seconds (>= 10)."""
    import torch

    it = iter(batches)

    def one() -> int:
        x, y = next(it)
        if to_device:
            x = x.cuda(non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.cuda(non_blocking=True)
        step(x, y)
        return len(y)

    for _ in range(warmup):
        one()
    torch.cuda.synchronize()
    with Sampler() as s:
        t0 = time.perf_counter()
        n = k = 0
        while k < 10 or time.perf_counter() - t0 < window_s:
            n += one()
            k += 1
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    return {"img_s": round(n / wall, 1), "gpu_util": round(sum(s.gpu) / max(1, len(s.gpu)), 1),
            "cpu_util": round(s.cpu, 1), "images": n, "seconds": round(wall, 2), "gpu_util_source": s.source}


def synthetic(step: Any, warmup: int, steps: float) -> dict[str, Any]:
    import torch

    x = torch.randn(BATCH, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (BATCH,), device="cuda")
    return run(iter(lambda: (x, y), None), step, warmup, steps)


def stock_loader(root: Path, workers: int) -> Any:
    import torch
    import torchvision
    from torchvision import transforms as T

    tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    ds = torchvision.datasets.ImageFolder(str(root), tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=workers,
                                         pin_memory=True, prefetch_factor=4, persistent_workers=True,
                                         drop_last=True)

    def forever() -> Any:
        while True:
            yield from loader

    return forever()


def cpuwise_loader(root: Path, mode: str) -> Any:
    """from_folder -> shuffle -> decode_split (CPU workers decode their share, pass the rest as bytes)
    -> batch -> prefetch, fed to GpuLoader with decode=mode; no other settings."""
    import cpuwise.data as cd
    from cpuwise.data.image.loader import GpuLoader

    split = cd.image.decode_split(224)
    ds = (cd.from_folder(str(root)).shuffle(seed=0).map(split)
          .batch(BATCH, drop_last=True, collate=split.collate).prefetch().repeat())
    return GpuLoader(ds, 224, decode=mode, split=split)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", default="/tmp/cpuwise-gpu-jpegs")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu_feed.json"))
    ap.add_argument("--models", default="resnet50,resnet18")
    args = ap.parse_args()
    import torch
    import torchvision

    from cpuwise.host import host_facts

    n = 1000 if args.quick else 3000
    t0 = time.time()
    root = make_jpeg_folder(Path(args.data) / f"n{n}", n=n, classes=100)
    print(f"data {folder_stats(root)} in {time.time() - t0:.0f}s", flush=True)
    warm, steps = (8, 3.0) if args.quick else (12, 10.0)  # warm-up steps, measured seconds
    worker_counts = (8, 16) if args.quick else (4, 8, 16)
    torch.backends.cudnn.benchmark = True
    result: dict[str, Any] = {
        "benchmark": "gpu_feed", "quick": args.quick, "batch": BATCH, "data": folder_stats(root),
        "machine": {**host_facts().to_dict(), "gpu": torch.cuda.get_device_name(0),
                    "torch": torch.__version__, "torchvision": torchvision.__version__},
        "models": {}}
    out = Path(args.out)
    for name in args.models.split(","):
        _, step = make_model(name)
        res: dict[str, Any] = {"synthetic": synthetic(step, warm, steps)}
        print(name, "synthetic", res["synthetic"], flush=True)
        for w in worker_counts:
            res[f"stock_{w}w"] = run(stock_loader(root, w), step, warm, steps, to_device=True)
            print(name, f"stock {w} workers", res[f"stock_{w}w"], flush=True)
        for mode in ("cpu", "gpu", "auto"):
            loader = cpuwise_loader(root, mode)
            res[f"cpuwise_{mode}"] = run(loader, step, warm + (48 if mode == "auto" else 0), steps)
            res[f"cpuwise_{mode}"]["decode"] = {k: v for k, v in loader.stats()["decode"].items()
                                                if k != "decisions"}
            res[f"cpuwise_{mode}"]["pipeline_config"] = loader.stats().get("config")
            loader.close()
            print(name, f"cpuwise {mode}", res[f"cpuwise_{mode}"], flush=True)
        syn = res["synthetic"]["img_s"]
        for v in res.values():
            v["vs_synthetic"] = round(v["img_s"] / syn, 3)
        result["models"][name] = res
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=str))
    print(f"\n{'model':<10}{'config':<22}{'img/s':>8}{'%syn':>7}{'GPU%':>6}{'CPU%':>6}  mode")
    for name, res in result["models"].items():
        for k, v in res.items():
            mode = v.get("decode", {}).get("mode", "")
            print(f"{name:<10}{k:<22}{v['img_s']:>8.0f}{100 * v['vs_synthetic']:>7.1f}{v['gpu_util']:>6.0f}"
                  f"{v['cpu_util']:>6.0f}  {mode}")


if __name__ == "__main__":
    main()
