"""`cpuwise doctor -- COMMAND ARGS...`: run a job, record it, name its bottleneck with a fix."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cpuwise._schema import Recording
from cpuwise.errors import CommandNotFoundError, ConfigError, RecordingError

DEFAULT_OUT = Path("cpuwise-report")
EXIT_NOT_FOUND = 127  # the shell's "command not found"


def _err(msg: str) -> None:
    Console(stderr=True).print(msg, markup=False)


def prepare_out(out: Path) -> Path:
    """Create the report folder and prove it takes files, before any job runs (a job that ran for hours
    must not end in a report that cannot be written).

    Raises:
        ConfigError: `out` is a file, or cannot be created or written; the message says which and why.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; expected a folder for the reports (created if missing). "
                          "Give another path, e.g. --out cpuwise-report.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".cpuwise-write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write the report to --out {out}: {exc.strerror or exc}. Expected a folder "
                          "this user can create and write; give another path.") from exc
    return out


def load_merged(folders: list[Path]) -> Recording:
    """One recording of several nodes' --out folders (or recording.json files); RecordingError when they
    are not of one run and one cpuwise version."""
    # lazy: see diagnose_and_report
    from cpuwise.monitor.merge import merge

    recs, names = [], []
    for folder in folders:
        path = folder / "recording.json" if folder.is_dir() else folder
        rec = Recording.load(path)
        recs.append(rec)
        names.append(str(rec.host.get("node") or folder.name))
    if len(set(names)) < len(names):  # nodes of one name (containers): the folders tell them apart
        names = [(f.name if f.is_dir() else f.parent.name) or str(i) for i, f in enumerate(folders)]
    if len(set(names)) < len(names):
        names = [f"node{i}" for i in range(len(folders))]
    return merge(recs, names)


def diagnose_and_report(rec: Any, out: Path, *, as_json: bool) -> None:
    """Diagnose `rec`, write the reports to `out` and print the summary (or JSON)."""
    # lazy: the CLI imports every subcommand; this one's libraries load when it runs
    from cpuwise.diagnose import diagnose
    from cpuwise.diagnose.metrics import measure
    from cpuwise.report import write_reports
    from cpuwise.report.terminal import render_summary

    out.mkdir(parents=True, exist_ok=True)
    try:
        m = measure(rec)  # once: the rules and every renderer read the same numbers
        findings = diagnose(rec, m)
        paths = write_reports(rec, findings, out, m)
    except Exception as exc:  # keep the recording even when a rule or renderer fails
        saved = rec.save(out / "recording.json")
        _err(f"cpuwise doctor: could not diagnose or render ({type(exc).__name__}: {exc}); the "
             f"recording is saved at {saved}. Re-run with `cpuwise doctor --from {saved}`.")
        raise typer.Exit(1 if rec.exit_code in (None, 0) else rec.exit_code) from exc
    if as_json:
        typer.echo(json.dumps({"end_reason": rec.end_reason, "exit_code": rec.exit_code,
                               "findings": [f.to_dict() for f in findings],
                               "reports": {k: str(v) for k, v in paths.items()}}, indent=1))
        return
    console = Console()
    console.print(render_summary(rec, findings, m))
    for name, path in paths.items():
        console.print(f"[dim]{name}:[/dim] {path}")


def check_trial_flags(try_fixes: bool, steps: int | None, repeats: int, trial_env: list[str] | None,
                      trial_cwd: bool, trial_timeout: float | None, no_run: bool) -> dict[str, str]:
    """The --try-fixes flags checked (ConfigError: what was expected, what was found, the fix); returns
    the --trial-env variables."""
    given = [name for name, on in (("--steps", steps is not None), ("--repeats", repeats != 1),
                                   ("--trial-env", bool(trial_env)), ("--trial-cwd", trial_cwd),
                                   ("--trial-timeout", trial_timeout is not None)) if on]
    if given and not try_fixes:
        raise ConfigError(f"{', '.join(given)} only apply to --try-fixes, which was not given; add "
                          "--try-fixes (e.g. `cpuwise doctor --try-fixes --steps 100 -- python train.py`).")
    if try_fixes and no_run:
        raise ConfigError("--try-fixes runs the job, so it cannot be combined with --from or --merge; "
                          "give the command after `--` instead.")
    if not try_fixes:
        return {}
    # lazy: see diagnose_and_report
    from cpuwise.cli.try_fixes import check_options
    from cpuwise.monitor.trials import parse_trial_env

    check_options(steps, repeats, trial_timeout)
    return parse_trial_env(list(trial_env or []))


def register(app: typer.Typer) -> None:
    @app.command(
        "doctor",
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    )
    def doctor(
        command: Annotated[list[str] | None, typer.Argument(help="The command to run, after `--`.")] = None,
        out: Annotated[Path, typer.Option("--out", help="Directory for report.html/json.")] = DEFAULT_OUT,
        interval: float = typer.Option(0.1, "--interval", help="Seconds between samples."),
        hang_timeout: float = typer.Option(0.0, "--hang-timeout",
                                           help="End the job after this many seconds without step "
                                                "progress while its CPU idles (0: never)."),
        as_json: bool = typer.Option(False, "--json", help="Print findings as JSON."),
        from_: Annotated[Path | None, typer.Option(
            "--from", help="Re-diagnose a saved recording.json / report.json instead of running anything.")
        ] = None,
        merge: bool = typer.Option(False, "--merge", help="Merge the reports of one distributed run's nodes: "
                                   "the arguments are their --out folders (give --out before them)."),
        try_fixes: bool = typer.Option(False, "--try-fixes", help="Measure the fixes instead of advising "
                                       "them: rerun the job for N steps as is, with its input pipeline taken "
                                       "out (the upper bound), with each fix the findings name, and with the "
                                       "best combination; report samples/s and speed-ups."),
        steps: Annotated[int | None, typer.Option(
            "--steps", help="--try-fixes: measured steps per trial (default: about 8 s of the first "
                            "run's steps).")] = None,
        repeats: int = typer.Option(1, "--repeats", help="--try-fixes: runs per trial (the median is kept)."),
        trial_env: Annotated[list[str] | None, typer.Option(
            "--trial-env", help="--try-fixes: KEY=VALUE set in every trial (repeatable), besides "
                                "CPUWISE_TRIAL=1.")] = None,
        trial_cwd: bool = typer.Option(False, "--trial-cwd", help="--try-fixes: run each trial in a fresh "
                                       "temporary folder, removed afterwards."),
        trial_timeout: Annotated[float | None, typer.Option(
            "--trial-timeout", help="--try-fixes: end a trial after this many seconds (default: sized "
                                    "from the first run).")] = None,
    ) -> None:
        """Run COMMAND and say where its CPU and GPU time goes, with the fix.

        Example: cpuwise doctor --out report -- python train.py --epochs 1

        Several nodes: run `cpuwise doctor --out shared/$(hostname) -- torchrun ...` on each, then
        `cpuwise doctor --out merged --merge shared/node-a shared/node-b`.

        Measured fixes: cpuwise doctor --try-fixes -- python train.py
        """
        # lazy: see diagnose_and_report (loaded when the command runs)
        from cpuwise.monitor.recorder import check_interval
        from cpuwise.monitor.runner import check_hang_timeout, run_job

        try:  # every argument is checked before anything runs
            check_interval(interval, "--interval")
            check_hang_timeout(hang_timeout, "--hang-timeout")
            trial_vars = check_trial_flags(try_fixes, steps, repeats, trial_env, trial_cwd, trial_timeout,
                                           merge or from_ is not None)
            prepare_out(out)
        except ConfigError as exc:
            _err(f"cpuwise doctor: {exc}")
            raise typer.Exit(2) from exc
        if merge:
            try:
                rec = load_merged([Path(d) for d in command or []])
            except RecordingError as exc:
                _err(f"cpuwise doctor --merge: {exc}")
                raise typer.Exit(2) from exc
            diagnose_and_report(rec, out, as_json=as_json)
            return
        if from_ is not None:
            try:
                rec = Recording.load(from_)
            except RecordingError as exc:
                _err(f"cpuwise doctor: {exc}")
                raise typer.Exit(2) from exc
            diagnose_and_report(rec, out, as_json=as_json)
            return
        if try_fixes:
            # lazy: the trials' modules load only when --try-fixes runs
            from cpuwise.cli.try_fixes import TrialOptions, run_try_fixes

            opts = TrialOptions(steps=steps, repeats=repeats, trial_env=trial_vars, temp_cwd=trial_cwd,
                                timeout=trial_timeout, interval=interval, hang_timeout=hang_timeout or None)
            try:
                # with --json, stdout carries the JSON alone: the progress goes to stderr
                code = run_try_fixes(list(command or []), out, opts, Console(stderr=as_json), as_json=as_json)
            except CommandNotFoundError as exc:
                _err(f"cpuwise doctor: {exc}")
                raise typer.Exit(EXIT_NOT_FOUND) from exc
            raise typer.Exit(code)
        try:
            rec = run_job(list(command or []), interval=interval, hang_timeout=hang_timeout or None)
        except CommandNotFoundError as exc:
            _err(f"cpuwise doctor: {exc}")
            raise typer.Exit(EXIT_NOT_FOUND) from exc
        except ConfigError as exc:
            _err(f"cpuwise doctor: {exc}")
            raise typer.Exit(2) from exc
        sys.stdout.flush()
        diagnose_and_report(rec, out, as_json=as_json)
        raise typer.Exit(rec.exit_code or 0)


def main() -> None:
    """`python -m cpuwise.cli.doctor ...`: the doctor alone (what `cpuwise doctor` runs)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
