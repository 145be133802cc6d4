"""Seeded fault injection for cpuwise.data: epochs of worker kills, interrupts, resumes and corrupt files.

    from cpuwise.testing.faults import make_files, run_faults
    files = make_files(tmp_path / "data", n=96)
    report = run_faults(files, epochs=8, seed=14, cache_dir=tmp_path / "cache")
    assert not report.problems, report.problems

Every epoch runs a process-worker pipeline over real JPEGs, some of them corrupt (cut short, a
decompression bomb, not an image at all), and injects faults at item counts drawn from the seed:

- **kill**: SIGKILL one worker after the k-th batch (its chunks are redone by a new worker);
- **interrupt**: save a checkpoint, read a few more batches, then raise in the consumer's loop (as a
  crashed training step would); a fresh pipeline loads the checkpoint and carries on;
- **resume**: save the state, close the pipeline, load the state into a fresh one;
- **close**: close the live iterator mid-epoch and resume the same Dataset from its state.

It checks that every good item is delivered exactly once per epoch (counting only what a checkpoint
covers), that every corrupt file is skipped and named, that a `cache(path)` recorded through all of
that serves the same items, and at the end that no worker process and no shared-memory segment is
left. A report lists what went wrong (`problems`) with counts and the memory used after each epoch
(benchmarks/soak.py runs it for minutes and checks that memory stays flat).
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import psutil

from cpuwise.data import image
from cpuwise.data._engine import shm
from cpuwise.data._engine.processes import MAX_DEATHS
from cpuwise.data._runtime.iterator import PipelineIterator
from cpuwise.data.dataset import Dataset
from cpuwise.data.formats.folder import from_files
from cpuwise.data.image import decoders

EVENTS = ("kill", "interrupt", "resume", "close")
BATCH = 6
_KILLS: dict[int, int] = {}  # id(Dataset) -> workers killed in its pool


@dataclass(frozen=True)
class Files:
    """The data set: `paths[i]` has label i; `corrupt` holds the labels of the files that are."""

    paths: list[str]
    corrupt: frozenset[int]

    @property
    def good(self) -> list[int]:
        return [i for i in range(len(self.paths)) if i not in self.corrupt]


@dataclass
class FaultReport:
    """What a run did and found; `problems` is empty when every check held."""

    epochs: int = 0
    items: int = 0  # good items delivered (each once per epoch when all is well)
    skipped: int = 0
    events: Counter[str] = field(default_factory=Counter)
    worker_pids: set[int] = field(default_factory=set)
    rss_mb: list[float] = field(default_factory=list)  # this process and its workers, after each epoch
    rss_main_mb: list[float] = field(default_factory=list)  # this process alone
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "items": self.items, "skipped": self.skipped,
                "events": dict(self.events), "workers_started": len(self.worker_pids),
                "rss_mb": [round(x, 1) for x in self.rss_mb],
                "rss_main_mb": [round(x, 1) for x in self.rss_main_mb], "seconds": round(self.seconds, 2),
                "problems": list(self.problems)}


def make_files(root: Path, n: int = 96, corrupt_every: int = 11, seed: int = 0) -> Files:
    """`n` small JPEGs under `root`, every `corrupt_every`-th one corrupt (of several kinds)."""
    from PIL import Image  # lazy: Pillow writes the fixtures; only this helper needs it

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    kinds = ["no end marker", "bomb", "not an image"]
    if any(b in decoders.installed() for b in decoders.REPORTING):
        kinds.append("cut with end marker")  # needs a decoder that reports libjpeg's warnings
    paths, corrupt = [], set()
    for i in range(n):
        img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        out = io.BytesIO()
        Image.fromarray(img).save(out, format="JPEG", quality=90)
        data = out.getvalue()
        if i % corrupt_every == corrupt_every - 1:
            kind = kinds[(i // corrupt_every) % len(kinds)]
            data = _corrupt(data, kind)
            corrupt.add(i)
        path = root / f"{i:05d}.jpg"
        path.write_bytes(data)
        paths.append(str(path))
    return Files(paths, frozenset(corrupt))


def _corrupt(data: bytes, kind: str) -> bytes:
    if kind == "no end marker":
        return data[: len(data) // 2]
    if kind == "cut with end marker":
        return data[: len(data) // 2] + b"\xff\xd9"
    if kind == "bomb":
        b = bytearray(data)
        sof = b.find(b"\xff\xc0")
        b[sof + 5 : sof + 9] = struct.pack(">HH", 30000, 30000)
        return bytes(b)
    return b"not an image at all " * 8


def pipeline(files: Files, workers: int = 2, cache_dir: Path | None = None) -> Dataset:
    """The pipeline under test: shuffle, decode in worker processes (skip corrupt), batch, prefetch;
    with `cache_dir`, decoded samples are recorded on disk and later epochs served from the record."""
    ds = from_files(files.paths, labels=list(range(len(files.paths))))
    if cache_dir is None:
        ds = ds.shuffle(seed=3)
    ds = ds.map(image.decode_crop(16), on_error="skip", workers=workers, backend="process")
    if cache_dir is not None:
        ds = ds.cache(str(cache_dir))
    return ds.batch(BATCH).prefetch(2)


def run_faults(files: Files, epochs: int | None = 8, seed: int = 14, workers: int = 2,
               cache_dir: Path | None = None, until: float | None = None,
               on_epoch: Callable[[FaultReport], None] | None = None) -> FaultReport:
    """Run `epochs` epochs (or until time.monotonic() passes `until`) with seeded faults; see the
    module docstring. Returns the report; the pipelines are closed whatever happens."""
    report = FaultReport()
    t0 = time.perf_counter()
    live: list[Dataset] = []
    try:
        epoch = 0
        while (epochs is None or epoch < epochs) and (until is None or time.monotonic() < until):
            _epoch(files, epoch, random.Random(seed * 100_003 + epoch), workers, cache_dir, report, live)
            epoch += 1
            report.epochs = epoch
            main, total = _rss_mb()
            report.rss_main_mb.append(main)
            report.rss_mb.append(total)
            if on_epoch is not None:
                on_epoch(report)
    finally:
        for ds in live:
            ds.close()
    report.seconds = time.perf_counter() - t0
    _check_leftovers(report)
    return report


def _epoch(files: Files, epoch: int, rng: random.Random, workers: int, cache_dir: Path | None,
           report: FaultReport, live: list[Dataset]) -> None:
    n_batches = -(-len(files.good) // BATCH)
    at = sorted(rng.sample(range(1, n_batches), k=min(n_batches - 1, rng.randint(1, 3))))
    plan = {k: rng.choice(EVENTS) for k in at}
    planned = dict(plan)  # _consume pops each event as it fires
    delivered: list[int] = []
    skipped: set[str] = set()
    if not live:
        live.append(pipeline(files, workers, cache_dir))
    ds = live[-1]
    ds.set_epoch(epoch)
    state: dict[str, Any] | None = None
    done = 0  # batches delivered and covered by the state
    while True:
        if state is not None:
            ds.load_state_dict(state)
        try:
            done, state, ds = _consume(ds, files, plan, done, delivered, skipped, rng, report, live, workers,
                                       cache_dir)
        except _Interrupted as stop:  # the consumer's loop raised: restart from the checkpoint
            done, state = stop.done, stop.state
            del delivered[stop.kept:]
            ds = _fresh(ds, files, workers, cache_dir, live)
            continue
        if state is None:
            break
    counts = Counter(delivered)
    wrong = {i: c for i, c in counts.items() if c != 1 or i in files.corrupt}
    missing = sorted(set(files.good) - set(counts))
    if wrong or missing:
        report.problems.append(f"epoch {epoch} (events at batches {planned}): items delivered more than "
                               f"once or corrupt {wrong}, missing {missing[:10]}")
    want = {files.paths[i] for i in files.corrupt}
    recorded = cache_dir is not None and epoch > 0  # later epochs are served from the record: no map
    if (skipped - want) or (not recorded and skipped != want):
        report.problems.append(f"epoch {epoch}: skipped {sorted(skipped - want)[:5]} that are good, did "
                               f"not name {sorted(want - skipped)[:5]} that are corrupt")
    report.items += len(delivered)
    report.skipped += len(files.corrupt)


class _Interrupted(Exception):
    """Raised in the consumer's loop (a crashed training step), carrying the last checkpoint."""

    def __init__(self, state: dict[str, Any], done: int, kept: int) -> None:
        super().__init__("injected interrupt")
        self.state, self.done, self.kept = state, done, kept


def _consume(ds: Dataset, files: Files, plan: dict[int, str], done: int, delivered: list[int],
             skipped: set[str], rng: random.Random, report: FaultReport, live: list[Dataset], workers: int,
             cache_dir: Path | None) -> tuple[int, dict[str, Any] | None, Dataset]:
    """Read batches until the epoch ends (state None) or a resume/close event (its state)."""
    it: Iterator[Any] = iter(ds)
    try:
        for _, y in it:
            delivered.extend(int(v) for v in y)
            done += 1
            report.worker_pids.update(ds.worker_pids())
            event = plan.pop(done, None)
            if event is None:
                continue
            report.events[event] += 1
            if event == "kill" and _KILLS.get(id(ds), 0) >= MAX_DEATHS:
                event = "resume"  # more kills would trip the pool's give-up rule (by design): restart
            if event == "kill" and ds.worker_pids():
                _KILLS[id(ds)] = _KILLS.get(id(ds), 0) + 1
                # The pool may have reaped a worker an earlier kill ended and not yet listed its
                # replacement: that worker is already dead, which is what the event wanted.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(rng.choice(ds.worker_pids()), signal.SIGKILL)
            elif event == "interrupt":
                state, kept = ds.state_dict(), len(delivered)
                for _ in range(rng.randint(0, 2)):  # read on past the checkpoint: lost on restart
                    more = next(it, None)
                    if more is None:
                        break
                    delivered.extend(int(v) for v in more[1])
                _collect_skipped(ds, skipped)
                raise _Interrupted(state, done, kept)
            elif event == "resume":
                state = ds.state_dict()
                _collect_skipped(ds, skipped)
                return done, state, _fresh(ds, files, workers, cache_dir, live)
            elif event == "close":
                state = ds.state_dict()
                _collect_skipped(ds, skipped)
                cast(PipelineIterator, it).close()
                return done, state, ds
    finally:
        report.worker_pids.update(ds.worker_pids())
    _collect_skipped(ds, skipped)
    return done, None, ds


def _fresh(old: Dataset, files: Files, workers: int, cache_dir: Path | None, live: list[Dataset]) -> Dataset:
    """Close `old` and build the same pipeline anew (as a restarted job would)."""
    old.close()
    live.remove(old)
    _KILLS.pop(id(old), None)
    ds = pipeline(files, workers, cache_dir)
    live.append(ds)
    return ds


def _collect_skipped(ds: Dataset, into: set[str]) -> None:
    for entry in ds.stats()["stages"]:
        if entry["kind"] == "map":
            into.update(entry["skipped"])


def _rss_mb() -> tuple[float, float]:
    """(this process's RSS, with its child processes') in MiB."""
    me = psutil.Process()
    main = total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return main / 2**20, total / 2**20


def _check_leftovers(report: FaultReport) -> None:
    deadline = time.monotonic() + 30.0
    alive = set(report.worker_pids)
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if _running(p)}
        if alive:
            time.sleep(0.05)
    if alive:
        report.problems.append(f"worker processes left running: {sorted(alive)}")
    segments = shm.leftovers(f"{shm.PREFIX}{os.getpid()}-")
    if segments:
        report.problems.append(f"shared-memory segments left: {segments[:5]}")


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
