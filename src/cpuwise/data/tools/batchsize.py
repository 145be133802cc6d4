"""Batch-size finder for torch models: the largest batch that fits with headroom, and the fastest one.

    r = cd.find_batch_size(model, torch.randn(3, 224, 224), device="cuda", optimizer=opt)
    r.max_batch, r.best_batch, r.measurements

CUDA: each probe runs a real step; an out-of-memory error or a peak (torch.cuda.max_memory_reserved)
above the budget means "does not fit". Sizes double until one fails, then a binary search narrows the
boundary. CPU: there is no allocator to ask, and an out-of-memory on the host kills the process rather
than raising, so the finder measures the bytes autograd saves for backward plus inputs and outputs at a
few small sizes, fits bytes = fixed + per_sample * batch, and solves it against the memory this process
may still use (cgroup-aware, cpuwise.host.usable_memory()). Then a short sweep times steps at powers of
two up to the largest fit; the best batch is the smallest within `tolerance` of the top samples/s.

The deciding parts (`next_probe`, `fit_memory`, `max_from_fit`, `choose_best`) are pure functions.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from cpuwise._optional import require
from cpuwise.data._tree import leaves, map_leaves
from cpuwise.errors import ConfigError
from cpuwise.host import usable_memory


@dataclass(frozen=True)
class Measurement:
    """One probe or timing of a batch size."""

    batch: int
    fits: bool
    peak_bytes: int | None = None  # CUDA: max reserved; CPU: estimated bytes of the step
    samples_per_s: float | None = None
    note: str = ""


@dataclass
class BatchSizeResult:
    """What the finder found: the largest batch that fits, the fastest one, and the measurements."""

    max_batch: int
    best_batch: int
    best_samples_per_s: float | None
    device: str
    budget_bytes: int
    memory_headroom: float
    mode: str
    measurements: list[Measurement] = field(default_factory=list)
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- decide (pure) -----------------------------------------------------------------------------------

def next_probe(lo: int, hi: int | None, max_batch: int) -> int | None:
    """The next batch size to try, given `lo` (largest known to fit, 0 if none) and `hi` (smallest known
    not to fit, None if none yet). Doubles until a failure, then bisects. None when the boundary is found."""
    if hi is None:
        nxt = max(1, lo * 2)
        if lo >= max_batch:
            return None
        return min(nxt, max_batch)
    if hi - lo <= 1:
        return None
    return (lo + hi) // 2


def fit_memory(points: Sequence[tuple[int, int]]) -> tuple[float, float]:
    """Least-squares line bytes = fixed + per_sample * batch through (batch, bytes) points."""
    if len(points) < 2:
        raise ConfigError(f"fit_memory needs at least 2 (batch, bytes) points, got {len(points)}.")
    n = len(points)
    mx = sum(b for b, _ in points) / n
    my = sum(m for _, m in points) / n
    var = sum((b - mx) ** 2 for b, _ in points)
    if var == 0:
        raise ConfigError(f"fit_memory needs at least 2 different batch sizes, got {[b for b, _ in points]}.")
    slope = sum((b - mx) * (m - my) for b, m in points) / var
    return my - slope * mx, max(slope, 0.0)


def max_from_fit(fixed: float, per_sample: float, budget_bytes: int, max_batch: int) -> int:
    """The largest batch whose estimated bytes stay within the budget (0 if not even one fits)."""
    if per_sample <= 0:
        return max_batch if fixed <= budget_bytes else 0
    return max(0, min(max_batch, int((budget_bytes - fixed) // per_sample)))


def choose_best(measurements: Sequence[Measurement], tolerance: float = 0.03) -> Measurement | None:
    """The smallest timed batch within `tolerance` of the best samples/s (smaller batches use less
    memory and often generalise better, so a near-tie goes to the smaller one)."""
    timed = [m for m in measurements if m.fits and m.samples_per_s]
    if not timed:
        return None
    top = max(m.samples_per_s or 0.0 for m in timed)
    close = [m for m in timed if (m.samples_per_s or 0.0) >= top * (1.0 - tolerance)]
    return min(close, key=lambda m: m.batch)


def sweep_sizes(max_fit: int, start: int = 1) -> list[int]:
    """Powers of two from `start` up to max_fit, plus max_fit itself."""
    sizes, b = [], max(1, start)
    while b < max_fit:
        sizes.append(b)
        b *= 2
    if max_fit >= 1:
        sizes.append(max_fit)
    return sizes


# --- collect (torch) ---------------------------------------------------------------------------------

class _Step:
    """Runs one training or inference step of `model` at a batch size, from one example sample."""

    def __init__(self, model: Any, example: Any, device: Any, mode: str,
                 loss_fn: Callable[[Any], Any] | None, optimizer: Any) -> None:
        self.torch = require("torch", extra="torch", purpose="finding a batch size")
        self.model, self.device, self.mode = model, device, mode
        self.loss_fn, self.optimizer = loss_fn, optimizer
        self.example = self._map(example, lambda t: t.to(device))

    def _map(self, tree: Any, fn: Callable[[Any], Any]) -> Any:
        """`fn` applied to every tensor of `tree`."""
        return map_leaves(lambda t: fn(t) if isinstance(t, self.torch.Tensor) else t, tree)

    def batch(self, b: int) -> Any:
        return self._map(self.example, lambda t: t.unsqueeze(0).expand(b, *t.shape).contiguous())

    def __call__(self, b: int) -> Any:
        x = self.batch(b)
        args = x if isinstance(x, tuple | list) else (x,)
        if self.mode == "infer":
            with self.torch.inference_mode():
                return self.model(*args)
        out = self.model(*args)
        loss = self.loss_fn(out) if self.loss_fn is not None else next(leaves(out)).float().mean()
        loss.backward()
        if self.optimizer is not None:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        else:
            self.model.zero_grad(set_to_none=True)
        return out


def _is_oom(exc: BaseException) -> bool:
    return "out of memory" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError"


def _cuda_probe(step: _Step, b: int, budget: int) -> Measurement:
    torch = step.torch
    torch.cuda.synchronize(step.device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(step.device)
    try:
        step(b)
        torch.cuda.synchronize(step.device)
    except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError
        if not _is_oom(exc):
            raise
        step.model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        return Measurement(b, False, None, None, "out of memory")
    peak = int(torch.cuda.max_memory_reserved(step.device))
    return Measurement(b, peak <= budget, peak, None, "" if peak <= budget else "over budget")


def _cpu_bytes(step: _Step, b: int) -> int:
    """Bytes of one step beyond the fixed model state: tensors autograd saves for backward (unique
    storages), plus input and output. A measured lower bound; the headroom covers the workspace."""
    torch = step.torch
    seen: dict[int, int] = {}

    def pack(t: Any) -> Any:
        try:
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return t

    x = step.batch(b)
    nbytes = sum(t.numel() * t.element_size() for t in _leaves(x, torch))
    args = x if isinstance(x, tuple | list) else (x,)
    if step.mode == "infer":
        with torch.inference_mode():
            out = step.model(*args)
        return nbytes + sum(t.numel() * t.element_size() for t in _leaves(out, torch))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = step.model(*args)
    nbytes += sum(t.numel() * t.element_size() for t in _leaves(out, torch))
    del out
    return nbytes + sum(seen.values())


def _leaves(tree: Any, torch: Any) -> list[Any]:
    """The tensors of `tree`."""
    return [x for x in leaves(tree) if isinstance(x, torch.Tensor)]


def _cpu_budget(headroom: float) -> int:
    rss = psutil.Process().memory_info().rss
    can_use = min(usable_memory(), rss + psutil.virtual_memory().available)
    return max(0, int(can_use * (1.0 - headroom)) - rss)


def _time(step: _Step, b: int, steps: int, cuda: bool) -> float:
    sync = (lambda: step.torch.cuda.synchronize(step.device)) if cuda else (lambda: None)
    step(b)  # warm-up: allocator, kernels, oneDNN primitives
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(b)
    sync()
    return b * steps / max(time.perf_counter() - t0, 1e-9)


def find_batch_size(
    model: Any,
    example_input: Any,
    device: Any = None,
    max_batch: int = 4096,
    memory_headroom: float = 0.1,
    loss_fn: Callable[[Any], Any] | None = None,
    optimizer: Any = None,
    *,
    mode: str = "train",
    steps: int = 3,
    sweep: bool = True,
    sweep_time_s: float = 20.0,
    tolerance: float = 0.03,
) -> BatchSizeResult:
    """Find the largest batch that fits `device` memory with `memory_headroom` spare, and the batch with
    the best samples/s.

    Args:
        model: a torch.nn.Module, already on `device`.
        example_input: ONE sample without the batch dimension (a tensor, or a tuple of tensors for
            several inputs); batches repeat it.
        mode: "train" (forward, backward, optimizer step) or "infer" (forward in inference_mode).
        loss_fn: output -> scalar loss; default output.float().mean().
        optimizer: stepped in train mode. Model and optimizer state are restored afterwards.
        sweep: time powers of two up to the largest fit (stops early after `sweep_time_s`).
    """
    torch = require("torch", extra="torch", purpose="finding a batch size")
    if max_batch < 1:
        raise ConfigError(f"max_batch must be >= 1, got {max_batch}.")
    if not 0.0 <= memory_headroom < 1.0:
        raise ConfigError(
            f"memory_headroom must be in [0, 1), got {memory_headroom}; e.g. 0.1 keeps 10 % free.")
    if mode not in ("train", "infer"):
        raise ConfigError(f"mode must be 'train' or 'infer', got {mode!r}.")
    dev = torch.device(device) if device is not None else _model_device(model, torch)
    cuda = dev.type == "cuda"
    step = _Step(model, example_input, dev, mode, loss_fn, optimizer)
    saved = _snapshot(model, optimizer) if mode == "train" else None
    was_training = model.training
    model.train(mode == "train")
    try:
        if cuda:
            total = torch.cuda.get_device_properties(dev).total_memory
            budget = int(total * (1.0 - memory_headroom))
            probes, max_fit = _search_cuda(step, budget, max_batch)
            why = f"largest batch whose peak reserved memory stays within {budget / 2**30:.1f} GiB"
        else:
            step(1)  # allocates gradients and optimizer state, so the budget below already excludes them
            budget = _cpu_budget(memory_headroom)
            probes, max_fit, why = _estimate_cpu(step, budget, max_batch)
        timed: list[Measurement] = []
        if sweep and max_fit >= 1:
            t_end = time.monotonic() + sweep_time_s
            for b in sweep_sizes(max_fit):
                timed.append(Measurement(b, True, None, _time(step, b, steps, cuda), "timed"))
                if time.monotonic() > t_end:
                    break
    finally:
        if saved is not None:
            _restore(model, optimizer, saved)
        model.train(was_training)
    best = choose_best(timed, tolerance)
    return BatchSizeResult(
        max_batch=max_fit, best_batch=best.batch if best else max_fit,
        best_samples_per_s=best.samples_per_s if best else None, device=str(dev), budget_bytes=budget,
        memory_headroom=memory_headroom, mode=mode, measurements=probes + timed, why=why,
    )


def _search_cuda(step: _Step, budget: int, max_batch: int) -> tuple[list[Measurement], int]:
    probes: list[Measurement] = []
    lo, hi = 0, None
    b = next_probe(lo, hi, max_batch)
    while b is not None:
        m = _cuda_probe(step, b, budget)
        probes.append(m)
        lo, hi = (b, hi) if m.fits else (lo, b)
        b = next_probe(lo, hi, max_batch)
    return probes, lo


def _estimate_cpu(step: _Step, budget: int, max_batch: int) -> tuple[list[Measurement], int, str]:
    sizes = [b for b in (1, 2, 4, 8) if b <= max_batch] or [1]
    points = [(b, _cpu_bytes(step, b)) for b in sizes]
    probes = [Measurement(b, n <= budget, n, None, "estimated") for b, n in points]
    if len(points) < 2:
        return probes, (1 if points[0][1] <= budget else 0), "max_batch is 1"
    fixed, per_sample = fit_memory(points)
    max_fit = max_from_fit(fixed, per_sample, budget, max_batch)
    why = (f"estimated {per_sample / 2**20:.2f} MiB per sample (+{fixed / 2**20:.1f} MiB) against "
           f"{budget / 2**30:.1f} GiB this process may still use")
    return probes, max_fit, why


def _model_device(model: Any, torch: Any) -> Any:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _snapshot(model: Any, optimizer: Any) -> tuple[Any, Any]:
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return state, (copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None)


def _restore(model: Any, optimizer: Any, saved: tuple[Any, Any]) -> None:
    model.load_state_dict(saved[0])
    model.zero_grad(set_to_none=True)
    if optimizer is not None and saved[1] is not None:
        optimizer.load_state_dict(saved[1])
