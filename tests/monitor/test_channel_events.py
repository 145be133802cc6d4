"""The channel writes JSON lines the reader folds into job facts; it is a no-op when inactive."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpuwise import _channel as channel
from cpuwise.monitor.events import ChannelReader, JobState


@pytest.fixture()
def chan(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "channel.jsonl"
    channel.set_path(str(path))
    yield path
    channel.set_path(None)


def test_inactive_channel_writes_nothing(tmp_path: Path) -> None:
    channel.set_path(None)
    assert not channel.ACTIVE
    channel.note_next(0.0, 1.0)
    channel.emit("pipeline_stats", {"pipeline": "x"})
    assert list(tmp_path.iterdir()) == []


def test_records_round_trip_into_job_state(chan: Path) -> None:
    channel.emit("hello", {"faulthandler": "/tmp/x"})
    channel.add_sync(0.2)
    channel.note_next(1.0, 1.5, source="dataloader", stream=7)
    channel.note_next(2.0, 2.1, source="dataloader", stream=7)
    channel.emit("dataloader", {"id": 1, "num_workers": 2, "batch_size": 8, "pin_memory": False,
                                "persistent_workers": False, "prefetch_factor": 2})
    channel.emit("dataloader", {"id": 1, "num_workers": 2, "batch_size": 8, "pin_memory": False,
                                "persistent_workers": False, "prefetch_factor": 2})
    channel.emit("thread_pools", {"role": "main", "torch_intra": 2, "torch_interop": 2, "native": []})
    channel.emit("pipeline_stats", {"pipeline": "p", "epoch": 0})
    channel.emit("pipeline_stats", {"pipeline": "p", "epoch": 1})
    channel.emit("exception", {"text": "Traceback ... ValueError"})
    st = JobState()
    st.ingest(ChannelReader(chan).read_new())
    pid = os.getpid()
    assert st.job_info["instrumented"] is True and st.faulthandler_pids == {pid}
    (lane,), _ = st.steps.lanes()
    assert lane.n == 1 and lane.sync_s == 0.0  # the sync before the first delivery belongs to no step
    assert st.last_progress == pytest.approx(2.1)
    assert st.job_info["dataloaders"] == [{"num_workers": 2, "batch_size": 8, "pin_memory": False,
                                           "persistent_workers": False, "prefetch_factor": 2, "pid": pid}]
    assert st.job_info["thread_pools"][str(pid)]["torch_intra"] == 2 and st.roles[pid] == "main"
    assert st.pipeline_stats == {"p": {"pipeline": "p", "epoch": 1}}
    assert "ValueError" in st.job_info["python_exception"]


def test_reader_keeps_partial_lines_and_skips_garbage(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    reader = ChannelReader(path)
    assert reader.read_new() == []  # no file yet
    path.write_bytes(b'{"k": "a"}\nnot json\n[1]\n{"k": "b", "x"')
    assert reader.read_new() == [{"k": "a"}]
    with open(path, "ab") as f:
        f.write(b': 1}\n')
    assert reader.read_new() == [{"k": "b", "x": 1}]


FORK = """
import os, sys
from cpuwise import _channel as channel
channel.set_path(sys.argv[1])
channel.emit("role", {"role": "main"})
pid = os.fork()
if pid == 0:
    channel.emit("role", {"role": "worker"})
    os._exit(0)
os.waitpid(pid, 0)
print(os.getpid(), pid)
"""


def test_forked_children_write_to_the_same_channel(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "c.jsonl"
    out = subprocess.run([sys.executable, "-c", FORK, str(path)], capture_output=True, text=True, check=True)
    parent, child = (int(v) for v in out.stdout.split())
    st = JobState()
    st.ingest(ChannelReader(path).read_new())
    assert st.roles == {parent: "main", child: "worker"}


def test_steps_are_summarised_and_written_at_most_every_flush_interval(chan: Path) -> None:
    t = 100.0
    for _ in range(1000):  # 1000 steps in 0.05 s: no syscall per step
        channel.note_next(t, t + 1e-5)
        t += 5e-5
    assert not chan.exists() or chan.read_text() == ""
    channel.note_next(t + 1.0, t + 1.0)  # past FLUSH_AFTER_S: one record with every step so far
    (rec,) = ChannelReader(chan).read_new()
    assert rec["k"] == "steps" and sum(g[2] for g in rec["g"]) == 1000
    assert len(rec["raw"]) == channel.RAW_PER_FLUSH and rec["b"] == pytest.approx(t + 1.0)


FORK_BUFFER = """
import os, sys
from cpuwise import _channel as channel
channel.set_path(sys.argv[1])
channel.note_next(0.0, 1.0, source="dataloader")
channel.note_next(1.0, 1.5, source="dataloader")   # one step, still pending when we fork
pid = os.fork()
if pid == 0:
    channel.emit("role", {"role": "worker"})       # flushes: must not write the parent's record
    os._exit(0)
os.waitpid(pid, 0)
"""  # the parent's record is written by the atexit flush


def test_a_forked_child_never_writes_its_parents_buffered_records(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "c.jsonl"
    subprocess.run([sys.executable, "-c", FORK_BUFFER, str(path)], check=True)
    kinds = sorted(r["k"] for r in ChannelReader(path).read_new())
    assert kinds == ["role", "steps"]
