"""Merge the recordings of one distributed run taken on several nodes into one (`cpuwise doctor --merge`).

Each node runs the doctor into a shared folder (`cpuwise doctor --out shared/$(hostname) -- torchrun
...`); `merge(recordings)` checks they belong together, puts every node on the first node's clock and
returns one Recording: every sample tagged with its node, pids made unique (node i's pid p becomes
i * PID_STRIDE + p), every rank's steps in `step_lanes`.

How the clocks are aligned: the doctors' wall clocks at their start give a first offset (good to NTP's
few ms, or not at all on a badly synced cluster). Then by the steps themselves: every step of a
data-parallel job ends in a collective that no rank leaves before the last one arrives, so step k ends
at the same instant on every rank; the offset that lines up the ends of the first steps (kept whole in
every lane) of one rank per node wins when there are enough of them (MIN_ALIGN_STEPS).
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from typing import Any

from cpuwise._schema import Recording, StepLane
from cpuwise.errors import RecordingError

PID_STRIDE = 10_000_000  # above Linux's largest pid (2**22)
MIN_ALIGN_STEPS = 5


def run_facts(rec: Recording) -> dict[str, Any]:
    """What identifies the distributed run a recording belongs to (from its ranks' launcher facts)."""
    ranks = rec.job_info.get("ranks") if isinstance(rec.job_info.get("ranks"), dict) else {}
    facts = [f for f in (ranks or {}).values() if isinstance(f, dict)]
    run_ids = {str(f.get("torchelastic_run_id")) for f in facts
               if f.get("torchelastic_run_id") not in (None, "", "none")}
    masters = {f"{f.get('master_addr')}:{f.get('master_port')}" for f in facts if f.get("master_addr")}
    worlds = {int(f["world_size"]) for f in facts if isinstance(f.get("world_size"), int | str)
              and str(f.get("world_size")).isdigit()}
    ranks_ = {int(f["rank"]) for f in facts if isinstance(f.get("rank"), int)}
    return {"run_id": run_ids, "master": masters, "world_size": worlds, "ranks": ranks_}


def check_same_run(recs: list[Recording], names: list[str]) -> None:
    """Raise RecordingError unless the recordings are of one run, by one cpuwise version, ranks disjoint."""
    if len(recs) < 2:
        raise RecordingError(f"--merge needs the recordings of at least 2 nodes, got {len(recs)}")
    versions = {str(r.doctor.get("cpuwise_version", "unknown")) for r in recs}
    if len(versions) > 1:
        found = ", ".join(f"{n}: {r.doctor.get('cpuwise_version', 'unknown')}"
                          for n, r in zip(names, recs, strict=True))
        raise RecordingError(f"expected recordings made by one cpuwise version, found {found}. Record every "
                             "node with the same cpuwise.")
    seen: dict[int, str] = {}
    ids: dict[str, set[str]] = {"run_id": set(), "master": set()}
    worlds: set[int] = set()
    for name, rec in zip(names, recs, strict=True):
        f = run_facts(rec)
        if not f["ranks"]:
            raise RecordingError(f"{name}: no ranks in this recording; expected the doctor's recording of a "
                                 "distributed job (torchrun, mp.spawn, accelerate launch, ...) on one node")
        for key in ids:
            ids[key] |= f[key]
        worlds |= f["world_size"]
        for rank in sorted(f["ranks"]):
            if rank in seen:
                raise RecordingError(f"rank {rank} appears in both {seen[rank]} and {name}: expected each "
                                     "node's recording once, of one run")
            seen[rank] = name
    for key, label in (("run_id", "run ids (TORCHELASTIC_RUN_ID)"), ("master", "rendezvous addresses")):
        if len(ids[key]) > 1:
            raise RecordingError(f"expected the recordings of one run, found different {label}: "
                                 f"{sorted(ids[key])}. Merge the folders of one run only.")
    if len(worlds) > 1:
        raise RecordingError(f"expected one world size, found {sorted(worlds)}: these are different runs")
    if worlds and len(seen) > max(worlds):
        raise RecordingError(f"{len(seen)} ranks in the recordings, but the world size is {max(worlds)}")


def _ends(rec: Recording) -> dict[int, float]:
    """Step index -> end time of the first rank's first steps (each lane keeps its first steps whole)."""
    ranks = rec.job_info.get("ranks") or {}
    pids = sorted((int(p) for p, f in ranks.items() if isinstance(f, dict) and str(p).isdigit()),
                  key=lambda p: ranks[str(p)].get("rank", 0))
    for pid in pids:
        steps = sorted((s for s in rec.steps if s.pid == pid), key=lambda s: s.index)
        if len(steps) >= MIN_ALIGN_STEPS:
            return {s.index: s.t_start + s.total_s for s in steps}
    return {}


def offsets(recs: list[Recording]) -> tuple[list[float], list[str]]:
    """Seconds to add to each recording's times to put it on the first one's clock, and how each was found."""
    ref_unix = recs[0].doctor.get("t0_unix")
    ref_ends = _ends(recs[0])
    out, how = [0.0], ["reference"]
    for rec in recs[1:]:
        unix = rec.doctor.get("t0_unix")
        known = isinstance(unix, int | float) and isinstance(ref_unix, int | float)
        wall = float(unix) - float(ref_unix) if known else 0.0  # type: ignore[arg-type]
        ends = _ends(rec)
        common = sorted(set(ends) & set(ref_ends))[2:]  # past the warm-up
        if len(common) >= MIN_ALIGN_STEPS:
            out.append(statistics.median(ref_ends[k] - ends[k] for k in common))
            how.append(f"step ends ({len(common)} common steps; wall clocks said {wall:+.3f} s)")
        else:
            out.append(wall)
            how.append("wall clocks (too few common steps)")
    return out, how


def merge(recs: list[Recording], names: list[str]) -> Recording:
    """One Recording of every node (see the module docstring); RecordingError when they do not belong
    together."""
    check_same_run(recs, names)
    shifts, how = offsets(recs)
    base = recs[0]
    out = replace(base, system=[], processes=[], gpus=[], steps=[], step_lanes=[], stacks={},
                  notes=list(base.notes), pipeline_stats=[], host=dict(base.host),
                  job_info={**base.job_info, "ranks": {}, "dataloaders": [], "thread_pools": {},
                            "exceptions": {}, "exited": []})
    out.host["nodes"] = names
    out.host["node_hosts"] = {name: rec.host for name, rec in zip(names, recs, strict=True)}
    for i, (name, rec, dt) in enumerate(zip(names, recs, shifts, strict=True)):
        def pid_(p: int | None, i: int = i) -> int | None:
            return None if p is None else i * PID_STRIDE + p

        out.system += [replace(s, t=round(s.t + dt, 4), node=name) for s in rec.system]
        known = {q.pid for q in rec.processes}
        out.processes += [replace(p, t=round(p.t + dt, 4), pid=i * PID_STRIDE + p.pid, node=name,
                                  ppid=i * PID_STRIDE + p.ppid if p.ppid in known else p.ppid)
                          for p in rec.processes]
        out.gpus += [replace(g, t=round(g.t + dt, 4), node=name,
                             process_mem_bytes={str(pid_(int(k))): v for k, v in g.process_mem_bytes.items()
                                                if k.isdigit()}) for g in rec.gpus]
        out.steps += [replace(s, t_start=round(s.t_start + dt, 6), pid=pid_(s.pid), node=name)
                      for s in rec.steps]
        out.step_lanes += [_shift_lane(lane, dt, pid_(lane.pid), name) for lane in rec.step_lanes]
        info = rec.job_info
        for key in ("ranks", "thread_pools", "exceptions"):
            value = info.get(key)
            if isinstance(value, dict):
                out.job_info[key].update({str(pid_(int(k))): {**v, "node": name} if isinstance(v, dict) else v
                                          for k, v in value.items() if str(k).isdigit()})
        out.job_info["exited"] += [pid_(p) for p in info.get("exited") or [] if isinstance(p, int)]
        out.job_info["dataloaders"] += [
            {**d, "pid": pid_(d["pid"]) if isinstance(d.get("pid"), int) else None}
            for d in info.get("dataloaders") or [] if isinstance(d, dict)]
        out.stacks.update({f"{name}:{k}": v for k, v in rec.stacks.items()})
        out.pipeline_stats += rec.pipeline_stats
        out.duration_s = max(out.duration_s, rec.duration_s + dt)
        out.notes.append(f"node {name}: {rec.end_reason}, exit code {rec.exit_code}; clock aligned by "
                         f"{how[i]}")
    for lst in (out.system, out.processes, out.gpus, out.steps):
        lst.sort(key=lambda x: getattr(x, "t", getattr(x, "t_start", 0.0)))
    return out


def _shift_lane(lane: StepLane, dt: float, pid: int | None, node: str) -> StepLane:
    return replace(lane, pid=pid, node=node, first_t=lane.first_t + dt, end_t=lane.end_t + dt,
                   intervals=[replace(iv, t=iv.t + dt) for iv in lane.intervals])

