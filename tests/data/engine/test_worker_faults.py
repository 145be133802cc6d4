"""Faults: killed workers, crashing and corrupt samples, and no leftovers in any ending."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from engine_fns import crash_on_13, decode_file, fail_on_7s, record_pid, slow_array, thread_caps
from guards import HANG_S, within

import cpuwise.data as cd
from cpuwise.data._engine import shm
from cpuwise.errors import SampleError, WorkerError

HERE = Path(__file__).parents[1]  # tests/data: where engine_fns lives


def mine() -> list[str]:
    return shm.leftovers(f"{shm.PREFIX}{os.getpid()}-")


def gone(pids: list[int], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_sigkilled_worker_is_replaced_and_its_items_redone() -> None:
    ds = cd.from_sequence(list(range(300))).map(slow_array, workers=2, backend="process").batch(10)
    labels: list[int] = []
    it = iter(ds)
    for i, (_, y) in enumerate(it):
        labels.extend(y.tolist())
        if i == 3:
            victim = ds.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
    assert labels == list(range(300))
    assert victim not in ds.worker_pids() and len(ds.worker_pids()) == 2
    pids = ds.worker_pids()
    ds.close()
    assert gone(pids) and mine() == []


def test_a_sample_that_kills_its_worker_raises_worker_error_naming_it() -> None:
    ds = cd.from_sequence(list(range(40))).map(crash_on_13, workers=2, backend="process")
    with pytest.raises(WorkerError, match=r"sample '13' killed a worker process twice"):
        within(lambda: list(ds), "an epoch with a crashing sample")  # a hang guard, not a timing
    ds.close()
    assert mine() == []


def test_a_sample_that_kills_its_worker_is_skipped_with_skip() -> None:
    ds = cd.from_sequence(list(range(40))).map(crash_on_13, workers=2, backend="process", on_error="skip")
    assert list(ds) == [i for i in range(40) if i != 13]
    assert ds.stats()["stages"][-1]["skipped"] == ["13"]
    ds.close()


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 tiny 'image' files in 2 classes; 1 % (4 files) corrupt."""
    root = tmp_path_factory.mktemp("imgs")
    for cls in ("cat", "dog"):
        (root / cls).mkdir()
    for i in range(400):
        cls = "cat" if i % 2 else "dog"
        body = b"JUNK" if i % 100 == 42 else b"IMG1" + bytes([i % 256]) * 64
        (root / cls / f"{i:04d}.jpg").write_bytes(body)
    return root


def test_corrupt_files_are_skipped_counted_and_named(image_dir: Path) -> None:
    ds = cd.from_folder(image_dir).shuffle(seed=0).map(decode_file, on_error="skip", workers=2,
                                                        backend="thread").batch(32)
    assert ds.classes == ["cat", "dog"]
    n = sum(len(y) for _, y in ds)
    assert n == 396
    st = ds.stats()
    entry = next(s for s in st["stages"] if s["kind"] == "map")
    assert entry["errors"] == 4
    assert sorted(Path(p).name for p in entry["skipped"]) == ["0042.jpg", "0142.jpg", "0242.jpg", "0342.jpg"]


def test_corrupt_file_raises_sample_error_naming_path_and_stage(image_dir: Path) -> None:
    ds = cd.from_folder(image_dir).map(decode_file, workers=2, backend="process")
    with pytest.raises(SampleError, match=r"map\(decode_file\).*0042\.jpg.*bad header") as info:
        for _ in ds:
            pass
    assert info.value.stage == "map(decode_file)" and info.value.sample.endswith("0042.jpg")
    ds.close()
    assert mine() == []


def test_iteration_continues_after_a_caught_sample_error() -> None:
    ds = cd.from_sequence(list(range(30))).map(fail_on_7s, workers=2, backend="thread").prefetch(2)
    it = iter(ds)
    got = []
    while True:
        try:
            got.append(next(it))
        except SampleError:
            continue
        except StopIteration:
            break
    assert got == [i for i in range(30) if i != 7]


def test_no_leftovers_after_end_exception_early_close_and_gc() -> None:
    before = mine()
    ds = cd.from_sequence(list(range(200))).map(slow_array, workers=2, backend="process").prefetch(4)
    assert len(list(ds)) == 200  # normal end
    it = iter(ds)
    next(it)
    next(it)  # work in flight
    pids = ds.worker_pids()
    assert len(pids) == 2
    it.close()  # early close: in-flight results are collected and released
    del it
    gc.collect()
    with pytest.raises(RuntimeError):
        for i, _ in enumerate(ds):
            if i == 5:
                raise RuntimeError("user code failed mid-epoch")
    del ds
    gc.collect()  # garbage collection shuts the pool down
    assert gone(pids)
    assert mine() == before == []


def test_workers_cap_native_threads_to_one() -> None:
    import numpy  # noqa: F401  (BLAS is loaded in the parent too)

    with cd.from_sequence(list(range(8))).map(thread_caps, workers=2, backend="process") as ds:
        assert all(n == 1 for _, n in ds)


def test_workers_cap_opencv_imported_lazily_by_a_map_function() -> None:
    pytest.importorskip("cv2")
    from engine_fns import cv2_threads

    with cd.from_sequence(list(range(6))).map(cv2_threads, workers=1, backend="process") as ds:
        list(ds)  # the first task imports cv2; the worker caps it right after
        assert list(ds) == [1] * 6


def test_ctrl_c_leaves_no_workers_and_no_segments(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
        sys.path.insert(0, {str(HERE)!r})
        import cpuwise.data as cd
        from engine_fns import slow_array
        ds = cd.from_sequence(list(range(100000))).map(slow_array, workers=2, backend="process").prefetch(4)
        for i, _ in enumerate(ds):
            if i == 20:
                print("PIDS", *ds.worker_pids(), flush=True)
    """))  # no __main__ guard on purpose: workers never re-run the script
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("PIDS"), line
    pids = [int(p) for p in line.split()[1:]]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=HANG_S) != 0
    assert gone(pids)
    assert shm.leftovers(f"{shm.PREFIX}{proc.pid}-") == []


def test_stale_segments_of_dead_runs_are_swept() -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = Path(shm.SHM_DIR) / f"{shm.PREFIX}{dead}-abc123-w0-s0"
    fresh = Path(shm.SHM_DIR) / f"{shm.PREFIX}{dead}-abc123-w0-s1"
    mine_live = Path(shm.SHM_DIR) / f"{shm.PREFIX}{os.getpid()}-abc123-w0-s0"
    for p in (stale, fresh, mine_live):
        p.write_bytes(b"x")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    os.utime(mine_live, (time.time() - 3600, time.time() - 3600))
    try:
        assert shm.sweep_stale() >= 1
        assert not stale.exists() and fresh.exists() and mine_live.exists()
    finally:
        for p in (stale, fresh, mine_live):
            p.unlink(missing_ok=True)


def test_worker_pids_are_distinct_processes() -> None:
    with cd.from_sequence(list(range(60))).map(record_pid, workers=2, backend="process") as ds:
        pids = {pid for _, pid in ds}
        assert os.getpid() not in pids and pids <= set(ds.worker_pids())
        assert np.all(np.diff([x for x, _ in ds]) == 1)


def sigkill_some(x: int) -> int:
    if x in (20, 90, 160):
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def test_skip_survives_several_crashing_samples() -> None:
    ds = cd.from_sequence(list(range(200))).map(sigkill_some, workers=2, backend="process",
                                                 on_error="skip")
    assert list(ds) == [i for i in range(200) if i not in (20, 90, 160)]
    ds.close()
