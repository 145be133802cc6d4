"""GpuLoader: cpuwise batches in, normalised device tensors out, each image decoded where it is cheapest.

    import cpuwise.data as cd
    from cpuwise.data.image.loader import GpuLoader
    split = cd.image.decode_split(224)                            # CPU workers decode their share
    ds = (cd.from_folder("train/").shuffle(seed=0).map(split, on_error="skip")
            .batch(256, collate=split.collate).prefetch())
    for images, labels in GpuLoader(ds, 224, split=split, decode="auto"):  # float32 NCHW channels_last
        ...

The GPU's share is decoded with batched nvJPEG + one crop-resize per image shape, on a side CUDA
stream so it overlaps training; the CPU's share is decoded by the pipeline's worker processes
(`decode_split`) and only copied and normalised here. The fraction comes from `placement.decide` over
rates measured as the loader runs (re-evaluated every `reevaluate_every` batches: worker CPU seconds
per image, the GPU's decode time, the consumer's rate while busy, fitted over windows at different
splits, and the CPU side's delivery when the consumer starves); decode="cpu"|"gpu"|"hybrid" forces it.

Other batch forms: `read_for_gpu` batches (bytes only) are split between the GPU and a pool of CPU
threads in this process (OpenCV releases the GIL; fine for modest rates, the training loop competes for
the GIL); batches already decoded (uint8 N x H x W x 3, from `decode_crop`) are only moved and
normalised. `stats()["decode"]` says which mode runs and why; under `cpuwise doctor` the stats are
emitted on the channel too.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from cpuwise import _channel as channel
from cpuwise._optional import available, require
from cpuwise._schema import PipelineStats
from cpuwise.data.image import geometry, gpu, ops, placement
from cpuwise.data.image.checks import DEFAULT_MAX_PIXELS, DecodePolicy
from cpuwise.data.image.split import SplitBatch, decode_split
from cpuwise.errors import ConfigError, SampleError
from cpuwise.host import usable_cores

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODES = ("auto", "cpu", "gpu", "hybrid")
_END = object()


class _Rates:
    """Running sums of measured work, read by placement (collect -> decide)."""

    def __init__(self) -> None:
        self.cpu_n = self.gpu_n = self.cons_n = self.out_gpu = self.out_n = 0
        self.cpu_s = self.gpu_s = self.cons_s = self.wait_s = 0.0
        self.lock = threading.Lock()

    def snapshot(self) -> dict[str, float | None]:
        return {"cpu_img_s_per_worker": self.cpu_n / self.cpu_s if self.cpu_s > 0 else None,
                "gpu_decode_img_s": self.gpu_n / self.gpu_s if self.gpu_s > 0 else None,
                "consumer_img_s": self.cons_n / self.cons_s if self.cons_s > 0 else None}


class GpuLoader:
    """Iterate normalised (images, labels) device tensors from a cpuwise Dataset of byte batches."""

    def __init__(self, ds: Any, size: int | tuple[int, int] = 224, *, decode: str = "auto",
                 device: Any = "cuda", mean: tuple[float, ...] = IMAGENET_MEAN,
                 std: tuple[float, ...] = IMAGENET_STD, channels_last: bool = True,
                 on_error: str = "raise", cpu_workers: int | str = "auto", depth: int = 3,
                 reevaluate_every: int = 8, probe_batches: int = 4, gpu_decode_fn: Any = None,
                 split: decode_split | None = None, tolerate_truncated: bool = False,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        if decode not in MODES:
            raise ConfigError(f"decode must be one of {MODES}, got {decode!r}")
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.torch = require("torch", purpose="GpuLoader")
        self.ds, self.size, self.requested = ds, geometry.output_size(size), decode
        self.device = self.torch.device(device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and self.device.index is None:
            self.device = self.torch.device("cuda", self.torch.cuda.current_device())
        self.mean, self.std, self.channels_last, self.on_error = mean, std, channels_last, on_error
        # the decode policy of the GPU share and of the CPU retries: pass what the reader got
        self.policy = DecodePolicy(tolerate_truncated, max_pixels)
        self.gpu_decode_fn = gpu_decode_fn
        self.has_gpu_decoder = gpu_decode_fn is not None or (self.cuda and available("torchvision"))
        # "auto": half the cores decode at most, leaving the rest to the training process and the system
        self.max_workers = (max(1, usable_cores() // 2 - 1) if cpu_workers == "auto" else int(cpu_workers))
        if self.max_workers < 1:
            raise ConfigError(f"cpu_workers must be >= 1, got {cpu_workers}")
        self.depth, self.every, self.probe = max(1, depth), max(1, reevaluate_every), max(1, probe_batches)
        self.rates = _Rates()
        self.skipped: list[str] = []
        self.decisions: list[dict[str, Any]] = []
        self.counts = {"gpu": 0, "cpu": 0, "predecoded": 0}
        first = {"cpu": 0.0, "gpu": 1.0, "hybrid": 0.5, "auto": 0.5}[decode]
        if not self.has_gpu_decoder and decode in ("gpu", "hybrid"):
            raise ConfigError(f"decode={decode!r} needs torchvision's nvJPEG decoder on a CUDA device; found "
                              f"device={self.device} torchvision={available('torchvision')}. Fix: "
                              "decode='cpu', or install torchvision matching torch")
        if not self.has_gpu_decoder:
            first = 0.0
        why = (f"decode={decode!r} asked for" if decode in ("cpu", "gpu") else
               "no GPU decoder here (CUDA + torchvision)" if not self.has_gpu_decoder else
               "probing: half of each batch on each side until both rates are measured")
        self.plan = placement.Placement("cpu" if first == 0 else ("gpu" if first == 1 else "hybrid"), first,
                                        self.max_workers, 0.0, why)
        self.pool: ThreadPoolExecutor | None = None
        self._tree: tuple[float, int] | None = None
        self._win: tuple[float, ...] | None = None
        self._points: list[tuple[float, float]] = []
        self._cpu_cap: float | None = None
        self.split = split
        if split is not None:
            split.control.set(self.plan.gpu_fraction)
        self.batches = 0
        self._last_emit = 0.0

    # --- decide --------------------------------------------------------------------------------
    def _worker_rate(self) -> float | None:
        """Images per CPU-second of the pipeline's worker processes since the last call: decode time
        plus everything else the workers spend per image (reading, IPC), not just the decode call."""
        try:
            import psutil  # lazy: read only when the loader replans with decode_split workers

            kids = psutil.Process().children(recursive=True)
            cpu = sum(sum(k.cpu_times()[:2]) for k in kids)
        except Exception:
            return None
        prev, self._tree = self._tree, (cpu, self.rates.cpu_n)
        if prev is None or self.rates.cpu_n - prev[1] < 32 or cpu <= prev[0]:
            return None
        return (self.rates.cpu_n - prev[1]) / (cpu - prev[0])

    def _window(self) -> dict[str, float] | None:
        """Deltas since the last replan: consumer rate while busy, GPU share delivered, starvation."""
        r = self.rates
        now = (time.perf_counter(), r.cons_n, r.cons_s, r.wait_s, r.out_gpu, r.out_n, r.cpu_n)
        prev, self._win = self._win, now
        if prev is None:
            return None
        d = [a - b for a, b in zip(now, prev, strict=True)]
        if d[0] <= 0 or d[2] <= 0 or d[5] <= 0:
            return None
        return {"rate": d[1] / d[2], "gpu_share": d[4] / d[5], "wait": d[3] / d[0],
                "cpu_img_s": d[6] / d[0]}

    def _replan(self) -> None:
        r = self.rates.snapshot()
        if self.split is not None:
            tree = self._worker_rate()
            if tree is not None and r["cpu_img_s_per_worker"] is not None:
                r["cpu_img_s_per_worker"] = min(tree, r["cpu_img_s_per_worker"])
        win = self._window()
        cons = r["consumer_img_s"]
        if cons is None or (self.requested in ("auto", "hybrid") and r["cpu_img_s_per_worker"] is None):
            return
        g = r["gpu_decode_img_s"] if self.has_gpu_decoder else None
        if win is not None:
            self._points = (self._points + [(win["gpu_share"], win["rate"])])[-8:]
            if win["wait"] > 0.1 and win["gpu_share"] < 0.95 and win["cpu_img_s"] > 0:
                self._cpu_cap = win["cpu_img_s"] / max(1e-3, 1 - win["wait"])  # what the CPU side delivers
            elif self._cpu_cap is not None and win["wait"] < 0.02:
                self._cpu_cap *= 1.2  # not starving: let the CPU side prove it can do more
        fit = placement.fit_gpu_cost(self._points)
        f = self.plan.gpu_fraction
        if fit is not None and g:
            cons, g = fit[0], fit[1]
        elif g and f > 0:  # the measured consumer rate already pays for the GPU's decode share
            cons = 1.0 / max(1.0 / cons - f / g, 0.5 / cons)
        mode = self.requested if self.has_gpu_decoder else "cpu"
        self.plan = placement.decide(r["cpu_img_s_per_worker"] or 0.0, self.max_workers, g, cons, mode,
                                     self._cpu_cap)
        if self.split is not None:
            self.split.control.set(self.plan.gpu_fraction)
        self.decisions.append({"t": time.time(), "batch": self.batches, **self.plan.to_dict(), "rates": r,
                               "window": win, "fit": fit, "cpu_cap": self._cpu_cap})

    # --- work ----------------------------------------------------------------------------------
    def _cpu_chunk(self, datas: list[bytes], params: np.ndarray, names: list[str], idx: np.ndarray
                   ) -> tuple[np.ndarray, list[int]]:
        t0 = time.perf_counter()
        h, w = self.size
        out = np.zeros((len(idx), h, w, 3), np.uint8)
        bad: list[int] = []
        for k, i in enumerate(idx):
            p = params[i]
            box = geometry.Box(int(p[0]), int(p[1]), int(p[2]), int(p[3]))
            try:  # the policy's backend: one that reports corrupt data unless truncation is tolerated
                out[k] = ops.decode_box(datas[i], lambda _h, _w, b=box: b, h, w, bool(p[4]), "cpu_decode",
                                        policy=self.policy)
            except SampleError:
                bad.append(int(i))
        with self.rates.lock:
            self.rates.cpu_n += len(idx)
            self.rates.cpu_s += time.perf_counter() - t0
        return out, bad

    def _failed(self, i: int, names: list[str], where: str) -> None:
        if self.on_error == "raise":
            raise SampleError(f"{where}: cannot decode '{names[i]}': corrupt or unsupported image. "
                              f"{ops.DECODE_FIX}", sample=names[i], stage=where)
        self.skipped.append(names[i])

    def _gpu_rows(self, full: Any, datas: list[bytes], params: np.ndarray, names: list[str],
                  pos: np.ndarray) -> list[int]:
        """Decode datas on the device into full[pos]; returns the positions that failed everywhere."""
        torch = self.torch
        t0 = time.perf_counter()
        out, failed = gpu.decode_batch(datas, params, self.size, self.device, self.gpu_decode_fn, self.policy)
        if self.cuda:
            torch.cuda.current_stream(self.device).synchronize()
        with self.rates.lock:
            self.rates.gpu_n += len(datas)
            self.rates.gpu_s += time.perf_counter() - t0
        full[torch.as_tensor(pos, device=self.device)] = out.to(full.dtype)
        if not failed:
            return []
        # nvJPEG refused some: the CPU decides whether they are corrupt or only unsupported there
        local = np.asarray(failed)
        retry, retry_bad = self._cpu_chunk(datas, params, names, local)
        ok = [j for j, i in enumerate(local) if int(i) not in retry_bad]
        if ok:
            fix = torch.from_numpy(retry[ok]).to(self.device).permute(0, 3, 1, 2)
            full[torch.as_tensor(pos[local[ok]], device=self.device)] = fix.to(full.dtype)
        return [int(pos[i]) for i in retry_bad]

    def _h2d_rows(self, full: Any, images: np.ndarray, pos: np.ndarray) -> None:
        t = self.torch.from_numpy(images)
        t = (t.pin_memory() if self.cuda else t).to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        full[self.torch.as_tensor(pos, device=self.device)] = t.to(full.dtype)

    def _process(self, batch: Any) -> tuple[Any, Any]:
        images, labels = batch[0], batch[1]
        if isinstance(images, np.ndarray):  # decoded by the pipeline: only move and normalise
            self.counts["predecoded"] += len(images)
            x = self.torch.from_numpy(images)
            x = (x.pin_memory() if self.cuda else x).to(self.device, non_blocking=True).permute(0, 3, 1, 2)
            return gpu.normalize(x, self.mean, self.std, self.channels_last), self._labels(labels, None)
        n, (h, w) = len(images) if isinstance(images, SplitBatch) else len(images[0]), self.size
        full = self.torch.zeros((n, 3, h, w), dtype=self.torch.float16 if self.cuda else self.torch.float32,
                                device=self.device)
        bad: list[int] = []
        if isinstance(images, SplitBatch):
            names = [""] * n
            for j, i in enumerate(images.gpu_pos):
                names[int(i)] = images.names[j]
            if len(images.gpu_pos):
                bad += self._gpu_rows(full, images.datas, images.params, images.names, images.gpu_pos)
            if len(images.cpu_pos):
                self._h2d_rows(full, images.images, images.cpu_pos)
                with self.rates.lock:
                    self.rates.cpu_n += len(images.cpu_pos)
                    self.rates.cpu_s += images.cpu_seconds
            n_gpu, n_cpu = len(images.gpu_pos), len(images.cpu_pos)
        else:
            datas, params, names = images
            jpeg = np.flatnonzero(params[:, 7] != 0)
            k = int(round(self.plan.gpu_fraction * n)) if self.has_gpu_decoder else 0
            gpu_idx = jpeg[: min(k, len(jpeg))]
            cpu_idx = np.setdiff1d(np.arange(n), gpu_idx)
            chunks = [c for c in np.array_split(cpu_idx, max(1, min(self.plan.workers or 1, len(cpu_idx))))
                      if len(c)]
            futures = [self._get_pool().submit(self._cpu_chunk, datas, params, names, c) for c in chunks]
            if len(gpu_idx):
                bad += self._gpu_rows(full, [datas[i] for i in gpu_idx], params[gpu_idx],
                                      [names[i] for i in gpu_idx], gpu_idx)
            for fut, c in zip(futures, chunks, strict=True):
                arr, chunk_bad = fut.result()
                self._h2d_rows(full, arr, c)
                bad += chunk_bad
            n_gpu, n_cpu = len(gpu_idx), len(cpu_idx)
        self.counts["gpu"] += n_gpu
        self.counts["cpu"] += n_cpu
        with self.rates.lock:
            self.rates.out_gpu += n_gpu
            self.rates.out_n += n_gpu + n_cpu
        keep = None
        if bad:
            for i in sorted(bad):
                self._failed(i, names, "gpu_loader")
            keep = np.setdiff1d(np.arange(n), bad)
            full = full[self.torch.as_tensor(keep, device=self.device)]
        return gpu.normalize(full, self.mean, self.std, self.channels_last), self._labels(labels, keep)

    def _get_pool(self) -> ThreadPoolExecutor:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="cpuwise-decode")
        return self.pool

    def _labels(self, labels: Any, keep: np.ndarray | None) -> Any:
        y = np.asarray(labels)
        if keep is not None:
            y = y[keep]
        return self.torch.from_numpy(np.ascontiguousarray(y)).to(self.device, non_blocking=True)

    # --- iterate -------------------------------------------------------------------------------
    def _produce(self, q: queue.Queue[Any], stop: threading.Event) -> None:
        torch = self.torch
        try:
            stream = torch.cuda.Stream(self.device) if self.cuda else None
            if self.cuda:
                torch.cuda.set_device(self.device)
            for batch in self.ds:
                if stop.is_set():
                    return
                if stream is not None:
                    with torch.cuda.stream(stream):
                        x, y = self._process(batch)
                        ev = torch.cuda.Event()
                        ev.record(stream)
                else:
                    (x, y), ev = self._process(batch), None
                self.batches += 1
                if self.batches == 1 and self.split is not None:
                    self._worker_rate()  # baseline for the workers' CPU time
                if self.requested != "cpu" and (self.batches == self.probe or self.batches % self.every == 0):
                    self._replan()
                self._put(q, stop, (x, y, ev))
        except BaseException as exc:  # surfaced in the consumer's thread
            self._put(q, stop, exc)
            return
        self._put(q, stop, _END)

    @staticmethod
    def _put(q: queue.Queue[Any], stop: threading.Event, item: Any) -> None:
        """Put unless the consumer went away (then the producer must not block forever)."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Any:
        q: queue.Queue[Any] = queue.Queue(maxsize=self.depth)
        stop = threading.Event()
        thread = threading.Thread(target=self._produce, args=(q, stop), daemon=True,
                                  name="cpuwise-gpu-loader")
        thread.start()
        last_exit: float | None = None
        try:
            while True:
                t_enter = time.perf_counter()
                item = q.get()
                if item is _END:
                    self._emit(force=True)
                    return
                if isinstance(item, BaseException):
                    raise item
                x, y, ev = item
                if ev is not None:
                    cur = self.torch.cuda.current_stream(self.device)
                    cur.wait_event(ev)
                    x.record_stream(cur)
                    y.record_stream(cur)
                t_exit = time.perf_counter()
                if last_exit is not None:
                    with self.rates.lock:
                        self.rates.cons_n += len(x)
                        self.rates.cons_s += max(t_enter - last_exit, 1e-6)
                        self.rates.wait_s += t_exit - t_enter
                last_exit = t_exit
                if channel.ACTIVE:
                    channel.note_next(t_enter, t_exit, stream=id(self), item=x)
                    self._emit()
                yield x, y
        finally:
            stop.set()
            thread.join(timeout=10)

    def __len__(self) -> int:
        return len(self.ds)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    # --- render --------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """The pipeline's stats (cpuwise._schema.PipelineStats) with its `decode` entry set:
        {mode, gpu_fraction, why, rates, images, skipped, decisions}."""
        base = (PipelineStats.from_dict(self.ds.stats()) if hasattr(self.ds, "stats")
                else PipelineStats(pipeline=type(self.ds).__name__))
        r = self.rates.snapshot()
        mode = self.plan.mode
        if self.counts["predecoded"] and not (self.counts["gpu"] or self.counts["cpu"]):
            mode, why = "cpu", "batches arrive decoded by the pipeline's CPU workers (uint8 images)"
        else:
            why = self.plan.why
        base.decode = {"mode": mode, "requested": self.requested, "gpu_fraction": self.plan.gpu_fraction,
                          "workers": self.plan.workers, "max_workers": self.max_workers, "why": why,
                          "rates": {k: (None if v is None or math.isnan(v) else round(v, 1))
                                    for k, v in r.items()},
                          "images": dict(self.counts), "skipped": list(self.skipped[:1000]),
                          "decisions": self.decisions[-20:]}
        return base.to_dict()

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if channel.ACTIVE and (force or now - self._last_emit >= 2.0):
            self._last_emit = now
            channel.emit("pipeline_stats", self.stats())
