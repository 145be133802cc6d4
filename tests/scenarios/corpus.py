"""The scenario corpus: real training scripts and the verdict the doctor must give each one.

Each script does real work (no sleep standing in for CPU work, except where waiting is the subject)
and carries no hint for the doctor. `verdict` is the primary finding the doctor must give; `wrong`
lists verdicts it must not give (the wrong ones it used to give); `fix_contains` are fragments the
primary finding's code fix must contain, in the idiom of the job's framework.

Every scenario runs end to end under the doctor in the suite. `deterministic` ones end the same way on
any machine (a crash, a hang) and are judged whole there. The others' verdicts rest on measured shares of
time and CPU, which the machine and its load can tip: for them the suite checks what does not depend on
speed (`mechanics`: exit code, steps timed, ranks recognised, the framework whose idiom the fixes take)
and judges the verdict on a recording of a real run (tests/scenarios/recordings, made by `python
benchmarks/corpus.py --record`); `pytest tests/scenarios --corpus` and the benchmark judge them live.

Classes that need hardware this machine lacks (NCCL, per-rank GPUs, a GPU `.item()` stall, a
container CPU quota) are checked on recordings and fakes in tests/diagnose, not here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cpuwise._schema import Recording
from cpuwise.diagnose import diagnose
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.idioms import idiom_of
from cpuwise.diagnose.metrics import measure
from cpuwise.monitor.backends import NoGpu
from cpuwise.monitor.runner import run_job
from cpuwise.testing.verdicts import accepted

HERE = Path(__file__).resolve().parent
RECORDINGS = HERE / "recordings"


@dataclass(frozen=True)
class Scenario:
    name: str
    script: str
    verdict: tuple[str, ...]  # accepted primary verdicts
    wrong: tuple[str, ...] = ()  # verdicts that must not appear among the findings
    framework: str = "torch"  # whose idiom the fix is written in (cpuwise.diagnose.idioms)
    fix_contains: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    launcher: tuple[str, ...] = ()  # e.g. ("-m", "torch.distributed.run", "--nproc_per_node=2")
    hang_timeout: float | None = None
    neighbour_hog: bool = False  # another CPU-bound process runs beside the job
    exit_code: int = 0
    ranks: int | None = None  # ranks the doctor must recognise
    env: dict[str, str] = field(default_factory=dict)
    says: tuple[str, ...] = ()  # fragments the primary finding's summary must contain
    deterministic: bool = False  # the verdict holds however fast or loaded the machine is

    @property
    def label(self) -> str:
        """The scenario's id in test names and recording file names."""
        return self.script.removesuffix(".py") + ("+hog" if self.neighbour_hog else "")

    def command(self, python: str) -> list[str]:
        return [python, *self.launcher, str(HERE / self.script), *self.args]


INPUT_BOUND = ("input_bound_cpu_saturated", "too_few_workers", "io_bound", "input_bound")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("jpeg workers saturate the CPU", "torch_jpeg_workers_saturated.py",
             ("input_bound_cpu_saturated",), wrong=("too_few_workers",)),
    Scenario("jpeg decode in the main process", "torch_jpeg_no_workers.py", ("too_few_workers",),
             fix_contains=("num_workers=",)),
    Scenario("in-memory MLP", "torch_in_memory_compute.py", ("healthy",), wrong=INPUT_BOUND),
    Scenario("latency-bound remote reads", "torch_remote_storage.py", ("io_bound",),
             wrong=("too_few_workers", "input_bound_cpu_saturated"), fix_contains=("num_workers=",)),
    Scenario("oversubscribed short job", "torch_oversubscribed_short.py", ("oversubscribed",),
             wrong=("input_bound",), fix_contains=("set_num_threads(1)",)),
    Scenario("copy-on-read worker memory", "torch_copy_on_read.py", ("memory_growth",)),
    Scenario("DDP gloo, input-bound ranks", "ddp_gloo_input_bound.py", ("input_bound_cpu_saturated",),
             ranks=2),
    Scenario("DDP gloo, one slow rank", "ddp_gloo_straggler.py", ("straggler",), ranks=2),
    Scenario("DDP gloo, rank 1 crashes", "ddp_gloo_rank_crash.py", ("crashed",), exit_code=1, ranks=2,
             says=("Rank 1 crashed", "corrupt record"), deterministic=True),
    Scenario("torchrun gloo, compute-bound", "torchrun_gloo_compute.py", ("healthy",), wrong=INPUT_BOUND,
             launcher=("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"), ranks=2),
    Scenario("Lightning, slow dataset, no workers", "lightning_slow_dataset.py", ("too_few_workers",),
             framework="lightning", fix_contains=("train_dataloader", "num_workers=")),
    Scenario("Lightning, compute-bound", "lightning_compute.py", ("healthy",), wrong=INPUT_BOUND,
             framework="lightning"),
    Scenario("HF Trainer, on-the-fly augmentation", "hf_trainer_slow_dataset.py", ("too_few_workers",),
             framework="hf", fix_contains=("TrainingArguments", "dataloader_num_workers=")),
    Scenario("Keras PyDataset, decode per batch", "keras_pydataset_slow.py", INPUT_BOUND,
             framework="keras", fix_contains=("workers=", "use_multiprocessing=True")),
    Scenario("Keras, compute-bound", "keras_compute.py", ("healthy",), wrong=INPUT_BOUND, framework="keras"),
    Scenario("slow collate_fn in the main process", "torch_slow_collate.py", ("too_few_workers",),
             fix_contains=("num_workers=",)),
    Scenario("workers restarted every epoch", "torch_epoch_startup.py", ("worker_startup",),
             fix_contains=("persistent_workers=True",)),
    Scenario("tiny steps through worker processes", "torch_tiny_steps.py", ("input_bound",)),
    Scenario("a CPU hog beside the job", "torch_jpeg_workers_saturated.py", ("cpu_contention",),
             neighbour_hog=True),
    Scenario("crash on a bad batch", "torch_crash_shape.py", ("crashed",), exit_code=1, deterministic=True),
    Scenario("deadlocked workers", "torch_worker_deadlock.py", ("hung",), hang_timeout=6.0, exit_code=143,
             deterministic=True),
    # cpuwise.data decodes at reduced scale: on 2 cores its workers may not saturate the CPU, and the
    # consumer's wait is then the pipeline's hand-off ("elsewhere"); either way the fix is in cd.'s idiom.
    Scenario("cpuwise.data, decode-bound", "cpuwise_data_decode_bound.py",
             ("input_bound_cpu_saturated", "input_bound"), framework="cpuwise.data", fix_contains=("cd.",)),
    Scenario("generator loop timed by cpuwise.watch", "watch_generator_loop.py", ("too_few_workers",),
             framework="loop"),
)


def run(sc: Scenario) -> tuple[Recording, list[Finding], float]:
    """Run the scenario's script under the doctor (CPU only) in the current folder: its recording, the
    findings and the seconds it took. Callers run it in a scratch folder (HF and Lightning write logs)."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if sc.neighbour_hog else None
    env = dict(os.environ)
    os.environ.update({"KERAS_BACKEND": "torch", "TOKENIZERS_PARALLELISM": "false", **sc.env})
    t0 = time.monotonic()
    try:
        rec = run_job(sc.command(sys.executable), gpu=NoGpu("scenario corpus: CPU only"),
                      hang_timeout=sc.hang_timeout)
    finally:
        os.environ.clear()
        os.environ.update(env)
        if hog is not None:
            hog.kill()
            hog.wait()
    return rec, diagnose(rec), time.monotonic() - t0


def mechanics(sc: Scenario, rec: Recording) -> list[str]:
    """What must hold of the scenario's run on any machine, however loaded: it ended as expected, the
    doctor timed its steps, recognised its ranks and the framework whose idiom its fixes take."""
    found = []
    if rec.exit_code != sc.exit_code:
        found.append(f"exit code {rec.exit_code} (expected {sc.exit_code}); "
                     f"{rec.job_info.get('python_exception')}")
    if sc.exit_code == 0 and not any(lane.n for lane in rec.step_lanes):
        found.append("no steps were timed")
    idiom = idiom_of(rec).name
    if idiom != sc.framework:
        found.append(f"the fixes would be written for {idiom!r}, expected {sc.framework!r}")
    if sc.ranks is not None:
        m = measure(rec)
        if sorted(r.rank for r in m.ranks) != list(range(sc.ranks)):
            found.append(f"ranks recognised: {m.ranks}")
        elif {p.role for p in rec.processes if p.pid in {r.pid for r in m.ranks}} != {"rank"}:
            found.append("a rank's process is not given the role 'rank'")
    return found


def problems(sc: Scenario, rec: Recording, findings: list[Finding]) -> list[str]:
    """What is wrong with the doctor's answer on this scenario (empty: it is right): the exit code, the
    primary verdict (or cpu_contention under competition) and no wrong one, the fix's words, the summary,
    and the `mechanics`."""
    ids = [f.id for f in findings]
    if rec.exit_code != sc.exit_code:
        return [f"exit code {rec.exit_code} (expected {sc.exit_code}); "
                f"{rec.job_info.get('python_exception')}; findings {ids}"]
    ok, why = accepted(rec, findings, expected=sc.verdict, wrong=sc.wrong)
    if not ok:
        return [why + "\n" + "\n".join(f"{f.id}: {f.summary}" for f in findings)]
    found: list[str] = []
    mine = findings[0] if findings[0].id in sc.verdict else None
    if mine is not None:  # None only when cpu_contention is the primary verdict (accepted above): the job's
        # own fix cannot be judged while another process takes its cores
        found += [f"{fragment!r} not in the fix of {mine.id}:\n{mine.fix_code}"
                  for fragment in sc.fix_contains if fragment not in mine.fix_code]
        found += [f"{fragment!r} not in {mine.id}'s summary: {mine.summary}"
                  for fragment in sc.says if fragment not in mine.summary]
    return found + [m for m in mechanics(sc, rec) if not m.startswith("exit code")]
