"""`cpuwise optimize MODEL`: the fastest CPU version of a saved model within an accuracy budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize_cmd)


def optimize_cmd(
    model: Annotated[Path, typer.Argument(help="A .onnx file, an exported .pt2, or a TorchScript .pt.")],
    data: Annotated[
        Path | None, typer.Option("--data", help=".npz with one array per model input (+ 'labels').")
    ] = None,
    task: Annotated[
        str, typer.Option(help="embedding | classifier | generic (how agreement is scored).")
    ] = "generic",
    max_drop: Annotated[
        str, typer.Option("--max-drop", help="Allowed score drop: 0.01 (absolute) or 1% (relative).")
    ] = "0.01",
    target: Annotated[str, typer.Option(help="latency (p50 at batch 1) | throughput (batch N).")] = "latency",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size for throughput.")] = 32,
    out: Annotated[Path, typer.Option("--out", help="Folder for model.onnx + cpuwise.json.")] = Path(
        "cpuwise-optimized"
    ),
    passes: Annotated[
        str, typer.Option(help="Comma list of pass names (an unknown name lists them), or auto for all.")
    ] = "auto",
    quick: Annotated[bool, typer.Option("--quick", help="Fewer settings and repeats.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail (exit 3) when the budget is impossible.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Try every technique that applies, measure each on this CPU, keep the fastest within budget."""
    # lazy: the CLI imports every subcommand; this one's libraries load when it runs
    from rich.console import Console

    from cpuwise.errors import BudgetError, CpuwiseError
    from cpuwise.optimize.api import optimize
    from cpuwise.optimize.evaluate import accuracy_metric
    from cpuwise.optimize.export import load_model
    from cpuwise.optimize.inputs import check_feed, load_npz, synthetic_feed
    from cpuwise.optimize.runtimes.onnxruntime import onnx_io

    console = Console(stderr=json_out)
    try:
        source = load_model(model)
        labels = None
        calibrate = True
        if source.onnx_path is not None:
            descr = onnx_io(source.onnx_path)[0]
            names = [d["name"] for d in descr]
            if data is not None:
                feed, labels = load_npz(data, names)
                feed = check_feed(feed, descr, source=data.name)
            else:
                feed, calibrate = synthetic_feed(descr), False
                console.print(
                    "[yellow]no --data: timing and FP32 agreement on random inputs; static INT8 "
                    "falls back to dynamic[/]"
                )
            inputs: object = feed
        else:
            ex = source.example_inputs
            if data is not None:
                names = [f"input_{i}" for i in range(len(ex))] if ex else ["input_0"]
                feed, labels = load_npz(data, names)
                inputs = tuple(feed[n] for n in names)
            elif ex:
                inputs, calibrate = tuple(x.detach().numpy() for x in ex), False
            else:
                raise typer.BadParameter(f"{model.name} has no saved example inputs; pass --data inputs.npz")
        metric = accuracy_metric if labels is not None and task == "classifier" else None
        result = optimize(
            source.onnx_path or source.module,
            source.example_inputs if source.module is not None else None,
            eval_inputs=inputs,
            eval_labels=labels if metric else None,
            metric=metric,
            task=task,
            max_drop=max_drop,
            target=target,
            batch_size=batch_size,
            out_dir=out,
            passes=passes,
            calibrate=calibrate,
            quick=quick,
            strict=strict,
            log=(lambda m: console.print(f"[dim]{m}[/]")),
        )
    except BudgetError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(3) from exc
    except CpuwiseError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        console.print(result.renderable())
        for note in result.notes:
            console.print(f"[dim]note: {note}[/]")
        console.print(
            f"saved to {out}/ (model.onnx, cpuwise.json, report.md); serve it with "
            f"cpuwise.optimize.load('{out}').predict(x)"
        )
