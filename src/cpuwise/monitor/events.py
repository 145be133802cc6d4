"""Read the channel file the job writes and fold its records into job facts (collect side)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpuwise.monitor.steps import StepCollector


class ChannelReader:
    """Reads the new complete lines of a growing JSON-lines file; tolerates partial and bad lines."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[dict[str, Any]]:
        """The records of the lines completed since the last call (a partial last line waits)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        out: list[dict[str, Any]] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out


@dataclass
class JobState:
    """What the instrumented job has told the doctor so far.

    Args:
        t0: the recording's start (time.perf_counter clock), for the step times.
    """

    t0: float = 0.0
    job_info: dict[str, Any] = field(default_factory=dict)
    pipeline_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)
    faulthandler_pids: set[int] = field(default_factory=set)
    steps: StepCollector = field(init=False)
    _dataloader_ids: set[Any] = field(default_factory=set)
    _progress: float | None = None  # set by tests; else the steps' latest delivery

    @property
    def last_progress(self) -> float | None:
        """perf_counter time of the latest delivery (a step's data arriving), None before the first."""
        return self._progress if self._progress is not None else self.steps.last_progress

    @last_progress.setter
    def last_progress(self, value: float | None) -> None:
        self._progress = value

    def __post_init__(self) -> None:
        self.steps = StepCollector(self.t0)
        self.job_info.setdefault("instrumented", False)
        self.job_info.setdefault("step_source", None)
        self.job_info.setdefault("thread_pools", {})
        self.job_info.setdefault("dataloaders", [])
        self.job_info.setdefault("python_exception", None)
        self.job_info.setdefault("exceptions", {})  # pid (str) -> the traceback that ended it
        self.job_info.setdefault("exited", [])  # pids whose interpreter exited normally
        self.job_info.setdefault("ranks", {})  # pid (str) -> rank facts (rank, world_size, launcher, ...)

    def ingest(self, events: list[dict[str, Any]]) -> None:
        """Fold channel records into the job's facts; records of unknown kinds are ignored."""
        for ev in events:
            kind, pid, p = ev.get("k"), ev.get("pid"), ev.get("p")
            if kind == "steps":
                self.steps.ingest(ev)
                continue
            if not isinstance(p, dict) or not isinstance(pid, int):
                continue
            if kind == "hello":
                self.job_info["instrumented"] = True
                if p.get("faulthandler"):
                    self.faulthandler_pids.add(pid)
            elif kind == "role":
                self.roles[pid] = str(p.get("role", "child"))
            elif kind == "rank":
                facts = self.job_info["ranks"].setdefault(str(pid), {})
                facts.update({str(k): v for k, v in p.items()})
                self.roles[pid] = "rank"
            elif kind == "bye":
                if pid not in self.job_info["exited"]:
                    self.job_info["exited"].append(pid)
            elif kind == "framework":
                self.job_info["framework"] = {str(k): v for k, v in p.items()}
            elif kind == "thread_pools":
                self.job_info["thread_pools"][str(pid)] = p
                if p.get("role"):
                    self.roles.setdefault(pid, str(p["role"]))
            elif kind == "dataloader":
                key = (pid, p.get("id"))
                if key not in self._dataloader_ids:
                    self._dataloader_ids.add(key)
                    settings = {k: v for k, v in p.items() if k != "id"}
                    self.job_info["dataloaders"].append({**settings, "pid": pid})
            elif kind == "trial":  # a --try-fixes trial's measurement (the process that trained most)
                best = self.job_info.get("trial")
                if not isinstance(best, dict) or int(p.get("steps") or 0) >= int(best.get("steps") or 0):
                    self.job_info["trial"] = {**p, "pid": pid}
            elif kind == "trial_note":
                self.job_info.setdefault("trial_notes", []).append(str(p.get("text", "")))
            elif kind == "exception":
                self.job_info["python_exception"] = p.get("text")
                self.job_info["exceptions"][str(pid)] = p.get("text")
            elif kind == "pipeline_stats":
                self.pipeline_stats[str(p.get("pipeline", f"pid{pid}"))] = p
            elif kind == "job_info":
                self.job_info.update(p)
