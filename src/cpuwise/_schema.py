"""The typed contracts between cpuwise's layers: what is collected, and what a pipeline reports.

- `Recording` (with its samples and steps) is what a doctor run collects: the contract between
  collect (`cpuwise.monitor`), decide (`cpuwise.diagnose`) and render (`cpuwise.report`).
- `PipelineStats` is what a `cpuwise.data` pipeline reports (`ds.stats()`, and the doctor's channel):
  the contract between `cpuwise.data` and the doctor, which never imports `cpuwise.data`.

Everything here is a dataclass of plain values (numbers, strings, lists, dicts) so a Recording saves
to JSON and loads back unchanged (`Recording.from_dict(r.to_dict()) == r`), and the rules in
`cpuwise.diagnose` can be tested on recorded or hand-written traces without a GPU. Values a job
reports may be missing or malformed (a job of another cpuwise version, a hand-edited file): the
`from_dict` readers of job-reported data coerce what they can and never raise on a bad field.

Times `t` are seconds since the recording started (monotonic clock). Percentages are 0-100 per core
for processes (a process using two full cores reads 200) and 0-100 of the whole device for GPUs.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from cpuwise.errors import RecordingError

FORMAT_VERSION = 2  # 2: steps summarised per lane and interval (StepLane), bounded sample in `steps`

# How the job ended.
END_EXITED = "exited"  # ran to completion (any exit code)
END_CRASHED = "crashed"  # killed by a signal or an uncaught exception
END_INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM to the doctor
END_HUNG = "hung"  # no step progress for --hang-timeout; the doctor ended it
END_NOT_FOUND = "not_found"  # the command could not be started

T = TypeVar("T")


def _num(value: object, default: float = 0.0) -> float:
    """A float from a job-reported value (which may be missing or malformed)."""
    if isinstance(value, bool):
        return float(value)
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return out if out == out else default  # NaN -> default


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return int(value)


# --- what a cpuwise.data pipeline reports --------------------------------------------------------


@dataclass
class StageEntry:
    """One stage of a pipeline in `PipelineStats.stages` (a fused map group gives one per map call).

    time_s is the stage's own work (worker seconds for maps, exclusive time otherwise); wait_ratio is
    the share of wall time its consumer spent blocked on it (inclusive of upstream).
    """

    name: str
    kind: str  # "source", "map", "filter", "batch", "prefetch", "shuffle", "cache", "repeat", ...
    items: int = 0
    time_s: float = 0.0
    per_item_ms: float = 0.0
    wait_ratio: float = 0.0
    workers: int | None = None
    errors: int = 0
    skipped: list[str] = field(default_factory=list)  # names of skipped samples (bounded)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageEntry:
        skipped = d.get("skipped")
        return cls(name=str(d.get("name", "?")), kind=str(d.get("kind", "map")),
                   items=int(_num(d.get("items"))), time_s=_num(d.get("time_s")),
                   per_item_ms=_num(d.get("per_item_ms")), wait_ratio=_num(d.get("wait_ratio")),
                   workers=_int_or_none(d.get("workers")), errors=int(_num(d.get("errors"))),
                   skipped=[str(x) for x in skipped] if isinstance(skipped, list) else [])


@dataclass
class PipelineConfig:
    """The parallelism a pipeline runs with (chosen by its autotuner or pinned by the user)."""

    workers: int = 0
    backend: str = "inline"  # "process", "thread", "inline"
    prefetch: int = 0
    cpu_budget: float | None = None
    ram_budget_bytes: int | None = None

    @classmethod
    def from_dict(cls, d: object) -> PipelineConfig:
        if not isinstance(d, dict):
            return cls()
        budget = d.get("cpu_budget")
        return cls(workers=int(_num(d.get("workers"))), backend=str(d.get("backend", "inline")),
                   prefetch=int(_num(d.get("prefetch"))),
                   cpu_budget=None if budget is None else _num(budget),
                   ram_budget_bytes=_int_or_none(d.get("ram_budget_bytes")))


@dataclass
class Decision:
    """One autotuner decision: when (wall clock), the config it chose, and why."""

    t: float
    config: PipelineConfig
    why: str

    @classmethod
    def from_dict(cls, d: object) -> Decision:
        d = d if isinstance(d, dict) else {}
        return cls(t=_num(d.get("t")), config=PipelineConfig.from_dict(d.get("config")),
                   why=str(d.get("why", "")))


@dataclass
class PipelineStats:
    """What one cpuwise.data pipeline (or GpuLoader) reports: `ds.stats()` is `to_dict()` of this.

    consumer_wait_ratio is the share of wall time the consumer spent inside `__next__`; `decode` is
    set by the GPU loader (which placement decodes JPEGs, and why).
    """

    pipeline: str
    epoch: int = 0
    items_out: int = 0
    consumer_wait_ratio: float | None = None
    config: PipelineConfig = field(default_factory=PipelineConfig)
    stages: list[StageEntry] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    decode: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["decode"] is None:
            del out["decode"]
        return out

    @classmethod
    def from_dict(cls, d: object) -> PipelineStats:
        """Read job-reported stats; malformed fields fall back to their defaults."""
        d = d if isinstance(d, dict) else {}
        stages = d.get("stages")
        decisions = d.get("decisions")
        decode = d.get("decode")
        wait = d.get("consumer_wait_ratio")
        return cls(
            pipeline=str(d.get("pipeline", "?")), epoch=int(_num(d.get("epoch"))),
            items_out=int(_num(d.get("items_out"))),
            consumer_wait_ratio=None if wait is None else _num(wait),
            config=PipelineConfig.from_dict(d.get("config")),
            stages=[StageEntry.from_dict(x) for x in stages if isinstance(x, dict)]
            if isinstance(stages, list) else [],
            decisions=[Decision.from_dict(x) for x in decisions] if isinstance(decisions, list) else [],
            decode=decode if isinstance(decode, dict) else None,
        )


# --- what a doctor run collects --------------------------------------------------------------------


@dataclass
class ProcessSample:
    """One process of the job's tree at one moment."""

    t: float
    pid: int
    ppid: int
    name: str
    role: str  # "main", "worker" (e.g. a DataLoader worker), "child"
    cpu_percent: float  # since the previous sample, 100 = one full core
    num_threads: int
    ctx_voluntary: int  # cumulative
    ctx_involuntary: int  # cumulative
    rss_bytes: int
    uss_bytes: int | None
    read_bytes: int | None  # cumulative
    status: str  # psutil status: running, sleeping, disk-sleep, zombie, ...
    cpu_core: int | None = None  # last core it ran on
    node: str = ""  # the host it ran on, in a recording merged from several nodes


@dataclass
class SystemSample:
    """The whole machine at one moment."""

    t: float
    cpu_percent_per_core: list[float]
    iowait_percent: float | None
    load1: float
    procs_running: int | None  # run queue length from /proc/stat
    mem_used_bytes: int
    mem_total_bytes: int
    swap_used_bytes: int
    node: str = ""  # the host, in a recording merged from several nodes


@dataclass
class GpuSample:
    """One GPU at one moment."""

    t: float
    index: int
    util_percent: float | None
    mem_used_bytes: int | None
    mem_total_bytes: int | None
    power_w: float | None
    sm_clock_mhz: float | None
    sm_activity_percent: float | None = None  # GPM SM activity where supported (Hopper)
    sm_occupancy_percent: float | None = None  # GPM SM occupancy (warps active / max), Hopper
    process_mem_bytes: dict[str, int] = field(default_factory=dict)  # pid (as str) -> bytes
    node: str = ""  # the host, in a recording merged from several nodes


@dataclass
class StepRecord:
    """One training step split into where the time went (seconds).

    `index` counts the steps of its lane (its process and step source) from 0.
    """

    index: int
    t_start: float
    data_wait_s: float  # blocked in the data iterator's __next__
    compute_s: float  # everything else in the step on the host
    sync_s: float = 0.0  # host blocked on the device (cuda synchronize, .item(), .cpu(), collectives)
    pid: int | None = None
    epoch_start: bool = False  # the first step of an iterator (its data-wait includes the loader's start)
    rank: int | None = None  # the distributed rank of its process, when it has one
    node: str = ""  # the host it ran on, in a recording merged from several nodes

    @property
    def total_s(self) -> float:
        return self.data_wait_s + self.compute_s + self.sync_s


@dataclass
class StepInterval:
    """The steps of one lane that started in [t, t + dt): count, sums and step-time quantiles.

    Quantiles come from a histogram with 8 bins per factor of 2 (within ~6 % of the true value).
    """

    t: float
    dt: float
    n: int
    data_wait_s: float  # sums over the interval's steps
    compute_s: float
    sync_s: float
    p50_s: float  # of the step time (data-wait + compute + sync)
    p90_s: float
    p99_s: float
    max_s: float


@dataclass
class StepLane:
    """Every step of one training loop (one process and step source: the main process, or one rank).

    The totals are exact however many steps there were; `intervals` stay bounded in number (they
    get longer on long jobs); the whole steps kept for plots are in `Recording.steps`.
    """

    pid: int | None
    source: str  # "dataloader", "cpuwise.data", "watch", "lightning", "hf", "keras", ...
    n: int = 0
    data_wait_s: float = 0.0  # sums over every step
    compute_s: float = 0.0
    sync_s: float = 0.0
    collective_s: float = 0.0  # the part of sync_s spent in collectives (waiting for the other ranks)
    epoch_starts: int = 0  # steps that began an iterator (an epoch)
    epoch_start_wait_s: float = 0.0  # their data-wait (the loader's start-up included)
    first_t: float = 0.0  # start of the first step
    end_t: float = 0.0  # end of the last step
    max_s: float = 0.0  # the longest step
    rank: int | None = None
    node: str = ""
    intervals: list[StepInterval] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        return self.data_wait_s + self.compute_s + self.sync_s


@dataclass
class GpuStatus:
    """Whether GPU metrics were collected, and if not, why."""

    available: bool
    reason: str = ""  # e.g. "nvidia-ml-py is not installed", "no NVIDIA driver (NVML_ERROR_...)"
    devices: list[str] = field(default_factory=list)  # device names
    sm_metric: str | None = None  # e.g. "GPM SM_OCCUPANCY" or "nvmlDeviceGetUtilizationRates"


@dataclass
class Recording:
    """Everything one doctor run collected."""

    command: list[str]
    started_at: str  # ISO 8601 wall clock
    duration_s: float
    interval_s: float
    end_reason: str  # one of END_*
    exit_code: int | None
    host: dict[str, Any]  # cpuwise.host.HostFacts.to_dict()
    gpu: GpuStatus
    system: list[SystemSample] = field(default_factory=list)
    processes: list[ProcessSample] = field(default_factory=list)
    gpus: list[GpuSample] = field(default_factory=list)
    # A bounded sample of whole steps (every step when there are few); `step_lanes` has the exact totals
    # and per-interval summaries of all of them. A recording with steps but no lanes lists every step.
    steps: list[StepRecord] = field(default_factory=list)
    step_lanes: list[StepLane] = field(default_factory=list)
    # Reported by the instrumented job: torch/OpenMP/BLAS thread pools (threadpoolctl), dataloader
    # settings (num_workers, batch_size, pin_memory), and `cpuwise.data` pipeline stats.
    job_info: dict[str, Any] = field(default_factory=dict)
    pipeline_stats: list[PipelineStats] = field(default_factory=list)
    stacks: dict[str, str] = field(default_factory=dict)  # pid (as str) -> stack dump text
    notes: list[str] = field(default_factory=list)
    doctor: dict[str, Any] = field(default_factory=dict)  # what the doctor itself cost: cpu_s, peak_rss_bytes
    version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; each pipeline's stats in the shape the job reported (`ds.stats()`)."""
        out = asdict(self)
        out["pipeline_stats"] = [s.to_dict() for s in self.pipeline_stats]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recording:
        """The Recording `to_dict` wrote; raises RecordingError on another format version or on a field
        that is missing or of the wrong type (named with its path, e.g. `processes[3].cpu_percent`).
        Pipeline stats are job-reported and read leniently (see PipelineStats.from_dict)."""
        version = data.get("version")
        if version != FORMAT_VERSION:
            raise RecordingError(
                f"expected a cpuwise recording of format version {FORMAT_VERSION}, found version "
                f"{version!r}. Re-record it with this cpuwise version."
            )
        stats = data.get("pipeline_stats")
        stats = stats if isinstance(stats, list) else []
        rest = {k: v for k, v in data.items() if k != "pipeline_stats"}
        rec = read_typed(cls, rest, "recording")
        rec.pipeline_stats = [PipelineStats.from_dict(s) for s in stats if isinstance(s, dict)]
        return rec

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        """Read a recording.json (or the recording inside a report.json).

        Raises:
            RecordingError: the file cannot be read, is not UTF-8 JSON (a binary file), is nested too
                deeply to parse, or is not a recording of this format version; the message names the file.
        """
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise RecordingError(f"cannot read recording {path}: {exc}") from exc
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise RecordingError(f"{path} is not a text file (byte {exc.start} is not UTF-8); expected the "
                                 "recording.json or report.json written by `cpuwise doctor`.") from exc
        except RecursionError as exc:
            raise RecordingError(f"{path} nests its JSON too deeply to be a recording; expected the "
                                 "recording.json or report.json written by `cpuwise doctor`.") from exc
        except ValueError as exc:
            raise RecordingError(f"{path} is not valid JSON ({exc}); expected the recording.json or "
                                 "report.json written by `cpuwise doctor`.") from exc
        if not isinstance(data, dict):
            raise RecordingError(f"expected a JSON object in {path}, found {type(data).__name__}")
        if "recording" in data and isinstance(data["recording"], dict):  # a report.json
            data = data["recording"]
        try:
            return cls.from_dict(data)
        except RecordingError as exc:
            raise RecordingError(f"{path}: {exc}") from exc


# --- reading the typed structures back ------------------------------------------------------------

_FIELDS: dict[type, list[tuple[str, Any, bool]]] = {}


def _fields_of(cls: type) -> list[tuple[str, Any, bool]]:
    """(name, resolved type, required) of a dataclass's fields, resolved once per class."""
    known = _FIELDS.get(cls)
    if known is None:
        hints = get_type_hints(cls)
        known = _FIELDS[cls] = [
            (f.name, hints[f.name], f.default is MISSING and f.default_factory is MISSING)
            for f in fields(cls)
        ]
    return known


def _bad(where: str, expected: str, value: object) -> RecordingError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return RecordingError(f"{where}: expected {expected}, found {shown}; expected the JSON written by "
                          "`cpuwise doctor` (recording.json).")


def read_typed(tp: Any, value: object, where: str) -> Any:
    """`value` (parsed JSON) checked against the type `tp` and built into it (dataclasses from objects).

    Numbers may be ints where floats are expected; unknown keys of an object are ignored (a newer
    writer's extra fields). Raises RecordingError naming the path of the first bad value.
    """
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin in (Union, UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return read_typed(option, value, where)
            except RecordingError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else _bad(where, " or ".join(map(_name, options)), value)
    if origin is list:
        if not isinstance(value, list):
            raise _bad(where, "a list", value)
        (item,) = get_args(tp) or (Any,)
        return [read_typed(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _bad(where, "an object", value)
        _, item = get_args(tp) or (str, Any)
        return {str(k): read_typed(item, v, f"{where}.{k}") for k, v in value.items()}
    if is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise _bad(where, f"an object ({tp.__name__})", value)
        kw = {}
        for name, ftp, required in _fields_of(tp):
            if name in value:
                kw[name] = read_typed(ftp, value[name], f"{where}.{name}")
            elif required:
                raise RecordingError(f"{where}: the field {name!r} is missing; expected the JSON written "
                                     "by `cpuwise doctor` (recording.json).")
        return tp(**kw)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad(where, "a number", value)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(where, "a whole number", value)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _bad(where, "true or false", value)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _bad(where, "a string", value)
        return value
    raise RecordingError(f"{where}: cannot read a field of type {tp!r}")  # a schema bug, not bad input


def _name(tp: Any) -> str:
    return {float: "a number", int: "a whole number", str: "a string", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp)))
