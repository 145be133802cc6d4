"""`cpuwise bench MODEL`: latency, throughput and memory of a model on this CPU, with a thread sweep."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cpuwise.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_cmd)


def bench_cmd(
    model: Annotated[Path, typer.Argument(help="A .onnx file, or a folder written by `cpuwise optimize`.")],
    data: Annotated[Path | None, typer.Option("--data", help=".npz with one array per model input.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size for throughput.")] = 32,
    threads: Annotated[
        str, typer.Option(help="Comma list of intra-op thread counts, or auto (1..usable cores).")
    ] = "auto",
    rows: Annotated[int, typer.Option(help="Synthetic rows when no --data is given.")] = 64,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Measure p50/p90 latency at batch 1, throughput at batch N and memory, for each thread count."""
    # lazy: the CLI imports every subcommand; this one's libraries load when it runs
    from rich.console import Console
    from rich.table import Table

    from cpuwise import host
    from cpuwise.errors import CpuwiseError
    from cpuwise.optimize.bench import rss_bytes
    from cpuwise.optimize.inputs import load_npz, synthetic_feed
    from cpuwise.optimize.io import IOConfig
    from cpuwise.optimize.runtimes.onnxruntime import sweep_threads, thread_sweep

    console = Console(stderr=json_out)
    try:
        path, io, spec, descr = _resolve(model)
        names = [d["name"] for d in descr]
        feed = load_npz(data, names)[0] if data is not None else synthetic_feed(descr, rows=rows)
        io = IOConfig(io.dynamic_padding, io.bucket_multiple, batch_size)
        counts = (
            sweep_threads(host.usable_cores()) if threads == "auto" else [int(t) for t in threads.split(",")]
        )
        before = rss_bytes()
    except (CpuwiseError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    try:
        results = thread_sweep(path, feed, counts, spec=spec, io=io)
    except Exception as exc:  # noqa: BLE001 - e.g. synthetic token ids outside the model's vocabulary
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = "" if data is not None else " (on synthetic inputs: pass real ones with --data inputs.npz)"
        console.print(f"[red]error:[/] the model failed to run{hint}: {first}")
        raise typer.Exit(2) from exc
    peak = _peak_rss()
    out = {
        "model": str(model),
        "batch_size": batch_size,
        "rss_before_bytes": before,
        "peak_rss_bytes": peak,
        "results": [{"threads": t, **r.to_dict()} for t, r in results],
        "host": host.host_facts().to_dict(),
    }
    if json_out:
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    table = Table(title=f"cpuwise bench {model.name} ({host.usable_cores()} usable cores)")
    for h in ("threads", "p50 ms (b1)", "p90 ms (b1)", f"samples/s (b{batch_size})", "RSS"):
        table.add_column(h, justify="right")
    best = max(results, key=lambda tr: tr[1].throughput)[0]
    for t, r in results:
        table.add_row(
            str(t),
            f"{r.p50_ms:.2f}",
            f"{r.p90_ms:.2f}",
            f"{r.throughput:.0f}",
            f"{r.rss_bytes / 1e6:.0f} MB",
            style="bold green" if t == best else None,
        )
    console.print(table)
    console.print(f"peak RSS {peak / 1e6:.0f} MB (process, includes the Python runtime)")


def _resolve(model: Path) -> tuple[Path, Any, Any, list[dict[str, Any]]]:
    # optimize's modules load only when the command runs (see bench_cmd)
    from cpuwise.optimize.deploy import artifact
    from cpuwise.optimize.io import IOConfig
    from cpuwise.optimize.runtimes.onnxruntime import onnx_io

    if model.is_dir() or model.name == artifact.CONFIG_FILE:
        folder, cfg = artifact.read(model)
        if cfg.runtime != "onnxruntime":
            raise ConfigError(
                f"expected an artifact served by ONNX Runtime (cpuwise bench sweeps its threads), found "
                f"one served by {cfg.runtime}; its measured settings are in {folder / artifact.CONFIG_FILE} "
                "and report.md; time it with cpuwise.optimize.load(folder).predict(x)"
            )
        return folder / cfg.model, cfg.io, cfg.sequence, cfg.inputs
    if model.suffix.lower() != ".onnx" or not model.is_file():
        raise ConfigError(
            f"expected a .onnx file or an optimized folder, got {model}; for torch models run "
            "`cpuwise optimize MODEL.pt2` first"
        )
    return model, IOConfig(), None, onnx_io(model)[0]


def _peak_rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
