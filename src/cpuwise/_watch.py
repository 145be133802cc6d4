"""`cpuwise.watch()`: time each training step explicitly, with or without `cpuwise doctor`.

    import cpuwise

    with cpuwise.watch() as w:
        for batch in w.iter(loader):      # data-wait = time inside the loader's __next__
            train_step(batch)
    w.report("doctor-report")             # standalone: diagnose and write the report

    with cpuwise.watch() as w:            # or mark step ends yourself
        for _ in range(steps):
            batch = make_batch(); train_step(batch)
            w.step()

Under `cpuwise doctor` the steps go to the doctor (which writes the report; `w.recording` stays
None). Standalone, the watch samples this process tree itself and builds `w.recording`.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from cpuwise import _channel as channel
from cpuwise._schema import (
    END_CRASHED,
    END_EXITED,
    END_INTERRUPTED,
    GpuStatus,
    Recording,
)
from cpuwise.errors import ConfigError
from cpuwise.host import host_facts
from cpuwise.monitor.backends import NoGpu
from cpuwise.monitor.instrument import torch_patches
from cpuwise.monitor.nvml import NvmlBackend
from cpuwise.monitor.procfs import ProcSystemBackend, process_backend
from cpuwise.monitor.recorder import Recorder, check_interval

T = TypeVar("T")
_streams = itertools.count(1_000_000)  # apart from the DataLoader patch's stream ids


class Watch:
    """Step timing for one training loop. Use through `cpuwise.watch()`."""

    def __init__(self, interval: float = 0.1, *, gpu: bool = True) -> None:
        self.interval = check_interval(interval)
        self.gpu = gpu
        self.recording: Recording | None = None
        self.standalone = False
        self._recorder: Any = None
        self._tmp: Path | None = None
        self._t_enter = 0.0
        self._step_stream: int | None = None
        self._started_at = ""

    def __enter__(self) -> Watch:
        self.standalone = not channel.ACTIVE
        if self.standalone:
            self._start_recorder()
        if "torch" in sys.modules:
            torch_patches.patch_all()
        torch_patches.report_pools("main")
        self._t_enter = time.perf_counter()
        return self

    def _start_recorder(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="cpuwise-watch-"))
        path = self._tmp / "channel.jsonl"
        channel.set_path(str(path))
        channel.emit("hello", {"argv": list(sys.argv), "faulthandler": None})
        if self.gpu:
            gpu: Any = NvmlBackend()
        else:
            gpu = NoGpu("GPU sampling was switched off (cpuwise.watch(gpu=False))")
        self._started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._recorder = Recorder(process_backend(os.getpid()), ProcSystemBackend(), gpu,
                                  interval=self.interval, channel_path=path).start()

    def step(self) -> None:
        """Mark the end of one step (the first step starts when the watch starts)."""
        t = time.perf_counter()
        if self._step_stream is None:
            self._step_stream = next(_streams)
            channel.note_next(self._t_enter, self._t_enter, source="watch", stream=self._step_stream)
        channel.note_next(t, t, source="watch", stream=self._step_stream)

    def iter(self, iterable: Iterable[T]) -> Iterator[T]:
        """Yield from `iterable`, timing each `__next__` as the step's data-wait."""
        return channel.timed(iterable, source="watch", stream=next(_streams))

    def __exit__(self, etype: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.standalone:
            return
        rec_ = self._recorder
        channel.flush()
        rec_.stop()
        if etype is None:
            end, text = END_EXITED, None
        elif issubclass(etype, KeyboardInterrupt):
            end, text = END_INTERRUPTED, None
        else:
            end, text = END_CRASHED, "".join(traceback.format_exception(etype, exc, tb))
        rec = Recording(command=list(sys.argv), started_at=self._started_at,
                        duration_s=round(rec_.now(), 3), interval_s=self.interval, end_reason=end,
                        exit_code=None, host=host_facts().to_dict(), gpu=GpuStatus(available=False))
        rec_.fill(rec)
        rec.job_info["python_exception"] = text
        rec.job_info["instrumented"] = True
        self.recording = rec
        channel.set_path(None)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def report(self, out_dir: str | Path) -> dict[str, Path]:
        """Diagnose `recording` and write the reports to `out_dir` (standalone only).

        Returns {} under `cpuwise doctor`, which writes the report itself.
        """
        if self.recording is None:
            if not self.standalone:
                return {}
            raise ConfigError("w.report() needs a finished watch: call it after the `with "
                              "cpuwise.watch() as w:` block has ended.")
        # lazy: the rules and renderers load only when a report is written
        from cpuwise.diagnose import diagnose
        from cpuwise.diagnose.metrics import measure
        from cpuwise.report import write_reports

        m = measure(self.recording)
        return write_reports(self.recording, diagnose(self.recording, m), Path(out_dir), m)


def watch(interval: float = 0.1, *, gpu: bool = True) -> Watch:
    """Time training steps: `with cpuwise.watch() as w:` then `w.step()` or `w.iter(loader)`."""
    return Watch(interval, gpu=gpu)
