"""`cpuwise plan REPORT_OR_PIPELINE`: how many cores and nodes of preprocessing a job needs.

    cpuwise plan cpuwise-report/report.json                    # from a doctor run of the job
    cpuwise plan train.py:make_dataset --target-rate 32000     # a pipeline it runs for --seconds

From a doctor recording it takes each cpuwise.data stage's measured CPU seconds per sample and the
consumer's step rate when data is ready; from a pipeline (a function returning a cpuwise Dataset),
it runs it briefly alone, so give the rate the consumer needs with --target-rate. It prints the
cores needed, the nodes of --cores-per-node, and whether this machine has them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)


def plan_cmd(
    target: Annotated[str, typer.Argument(help="report.json / recording.json of `cpuwise doctor`, or "
                                               "FILE.py:FUNCTION / module:FUNCTION returning a Dataset.")],
    target_rate: Annotated[float | None, typer.Option("--target-rate", help="Samples/s the consumer "
                                                      "needs (default: the recorded step rate).")] = None,
    cores_per_node: Annotated[float | None, typer.Option("--cores-per-node", help="Cores of a node "
                                                         "(default: this machine's).")] = None,
    reserve: Annotated[float, typer.Option("--reserve", help="Cores kept for the training "
                                                             "processes.")] = 1.0,
    seconds: Annotated[float, typer.Option("--seconds", help="How long a pipeline runs to be "
                                                             "measured.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Cores and nodes of preprocessing a job needs to stop waiting for data; does this machine have them."""
    # lazy: the CLI imports every subcommand; this one's modules load when it runs
    from cpuwise._scaleout import plan_from_recording
    from cpuwise._schema import Recording
    from cpuwise.errors import CpuwiseError

    for name, value in (("--target-rate", target_rate), ("--cores-per-node", cores_per_node)):
        if value is not None and not value > 0:
            typer.echo(f"error: expected {name} > 0, found {value}.", err=True)
            raise typer.Exit(2)
    try:
        if target.endswith((".json", ".json.gz")) or Path(target).is_file():
            plan = plan_from_recording(Recording.load(target), target_samples_s=target_rate,
                                       reserved_cores=reserve, cores_per_node=cores_per_node)
            if plan is None:
                typer.echo(f"error: {target} has no cpuwise.data pipeline stats; expected a doctor run of a "
                           "job whose input pipeline is cpuwise.data. Fix: plan the pipeline itself "
                           "(cpuwise plan FILE.py:FUNCTION --target-rate N).", err=True)
                raise typer.Exit(2)
        else:
            from cpuwise.data.tools.plan import plan_pipeline  # lazy: loads cpuwise.data

            plan = plan_pipeline(_load_pipeline(target), seconds=seconds, target_samples_s=target_rate,
                                 reserved_cores=reserve, cores_per_node=cores_per_node)
    except CpuwiseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(plan.to_dict(), indent=1, default=str))
    else:
        typer.echo("\n".join(plan.lines()))


def _load_pipeline(spec: str) -> Any:
    """The Dataset that FILE.py:FUNCTION or module:FUNCTION returns."""
    import importlib  # lazy: only for a pipeline target
    import importlib.util

    from cpuwise.errors import ConfigError

    where, _, func = spec.rpartition(":")
    if not where or not func:
        raise ConfigError(f"plan: expected a report .json or FILE.py:FUNCTION, found {spec!r}. Fix: "
                          "cpuwise plan train.py:make_dataset --target-rate 32000.")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ConfigError(f"plan: expected a Python file, found no file {where!r}.")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    fn = getattr(module, func, None)
    if not callable(fn):
        raise ConfigError(f"plan: expected a function {func!r} in {where}, found {type(fn).__name__}.")
    ds = fn()
    if not hasattr(ds, "specs"):
        raise ConfigError(f"plan: expected {func}() to return a cpuwise.data Dataset, found "
                          f"{type(ds).__name__}.")
    return ds
