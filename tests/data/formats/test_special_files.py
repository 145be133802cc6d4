"""Special files and directory loops: a listing takes regular files only and follows each real
directory once; opening a sample by path never blocks on a FIFO or a device (issue 14, item 4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from guards import all_gone, release_fifo, within

import cpuwise.data as cd
from cpuwise.errors import ConfigError, SampleError

HERE = Path(__file__).parents[1]  # tests/data: engine_fns and guards live there


def rel(ds: cd.Dataset, root: Path) -> list[tuple[str, int]]:
    return [(Path(p).relative_to(root).as_posix(), y) for p, y in ds]


@pytest.fixture
def with_fifo(tmp_path: Path) -> Path:
    """root/cls/{a,b}.jpg and a FIFO root/cls/x.jpg that nobody writes."""
    (tmp_path / "cls").mkdir()
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / "cls" / name).write_bytes(b"IMG1" + bytes(16))
    fifo = tmp_path / "cls" / "x.jpg"
    os.mkfifo(fifo)
    yield tmp_path
    release_fifo(str(fifo))


def test_from_folder_lists_regular_files_only(with_fifo: Path) -> None:
    ds = within(lambda: cd.from_folder(with_fifo), "from_folder over a FIFO")
    assert rel(ds, with_fifo) == [("cls/a.jpg", 0), ("cls/b.jpg", 0)]


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_reading_a_fifo_by_path_is_a_sample_error_not_a_hang(with_fifo: Path, backend: str) -> None:
    paths = [with_fifo / "cls" / n for n in ("a.jpg", "x.jpg", "b.jpg")]
    ds = cd.from_files(paths, labels=[0, 1, 2]).map(cd.image.read_bytes(), on_error="skip", workers=1,
                                                    backend=backend)
    try:
        got = within(lambda: [y for _, y in ds], "reading a FIFO named x.jpg")
        assert got == [0, 2]
        assert [Path(p).name for p in ds.stats()["stages"][-1]["skipped"]] == ["x.jpg"]
        strict = cd.from_files(paths).map(cd.image.read_bytes(), workers=1, backend=backend)
        with pytest.raises(SampleError, match=r"x\.jpg.*not a regular file \(a FIFO\)"):
            within(lambda: list(strict), "reading a FIFO named x.jpg")
        strict.close()
    finally:
        release_fifo(str(with_fifo / "cls" / "x.jpg"))
        ds.close()


def test_a_device_is_refused_without_reading_it() -> None:
    # /dev/null, not /dev/zero: before the fix a read of /dev/zero never ends and fills the memory
    with pytest.raises(SampleError, match=r"/dev/null.*not a regular file \(a character device\)"):
        within(lambda: list(cd.from_files(["/dev/null"]).map(cd.image.read_bytes(), backend="inline")),
               "reading /dev/null")


def test_a_symlink_loop_lists_each_file_once(tmp_path: Path) -> None:
    (tmp_path / "cls" / "sub").mkdir(parents=True)
    (tmp_path / "cls" / "a.jpg").write_bytes(b"x")
    (tmp_path / "cls" / "sub" / "b.jpg").write_bytes(b"x")
    (tmp_path / "cls" / "sub" / "up").symlink_to(tmp_path / "cls")  # a loop
    ds = within(lambda: cd.from_folder(tmp_path), "from_folder over a symlink loop")
    assert rel(ds, tmp_path) == [("cls/a.jpg", 0), ("cls/sub/b.jpg", 0)]


def test_two_symlink_loops_do_not_hang(tmp_path: Path) -> None:
    d = tmp_path / "cls"
    d.mkdir()
    (d / "a.jpg").write_bytes(b"x")
    (d / "l1").symlink_to(d)
    (d / "l2").symlink_to(d)  # 2^depth paths through two loops: os.walk(followlinks) never ends
    ds = within(lambda: cd.from_folder(tmp_path), "from_folder over two symlink loops")
    assert rel(ds, tmp_path) == [("cls/a.jpg", 0)]


def test_a_linked_directory_is_followed_once(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "r.jpg").write_bytes(b"x")
    (tmp_path / "data" / "cls").mkdir(parents=True)
    (tmp_path / "data" / "cls" / "link1").symlink_to(real)
    (tmp_path / "data" / "cls" / "link2").symlink_to(real)
    (tmp_path / "data" / "cls" / "broken.jpg").symlink_to(tmp_path / "missing.jpg")
    (tmp_path / "data" / "cls" / "file_link.jpg").symlink_to(real / "r.jpg")
    ds = cd.from_folder(tmp_path / "data")
    assert rel(ds, tmp_path / "data") == [("cls/file_link.jpg", 0), ("cls/link1/r.jpg", 0)]


def test_empty_folder_hint_names_the_right_argument(tmp_path: Path) -> None:
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"extensions=\(\) to take every file") as info:
        cd.from_folder(tmp_path)
    assert "extensions=None" not in str(info.value)
    assert [Path(p).name for p, _ in cd.from_folder(tmp_path, extensions=())] == ["notes.txt"]


def _wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.02)


def test_workers_die_with_a_killed_main_process(tmp_path: Path) -> None:
    """A worker blocked in a map function (here: opening a FIFO itself) must not outlive its job."""
    fifo = tmp_path / "block"
    os.mkfifo(fifo)
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import sys, threading, time
        sys.path.insert(0, {str(HERE)!r})
        import cpuwise.data as cd
        from engine_fns import open_path
        ds = cd.from_sequence([{str(fifo)!r}] * 4).map(open_path, workers=2, backend="process")
        it = iter(ds)
        threading.Thread(target=lambda: next(it), daemon=True).start()  # starts the workers
        while len(ds.worker_pids()) < 2:
            time.sleep(0.02)
        print("PIDS", *ds.worker_pids(), flush=True)
        time.sleep(600)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = within(proc.stdout.readline, "starting the job")
        assert line.startswith("PIDS"), line
        pids = [int(p) for p in line.split()[1:]]
        for pid in pids:  # both workers are blocked in the FIFO's open() before the kill
            marker = Path(f"{fifo}.started.{pid}")
            within(lambda m=marker: _wait_for(m), f"worker {pid} reaching the FIFO")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert all_gone(pids, timeout=60), "a worker outlived its SIGKILLed main process"
    finally:
        if proc.poll() is None:
            proc.kill()
        release_fifo(str(fifo))
