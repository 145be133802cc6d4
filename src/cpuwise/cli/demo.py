"""`cpuwise demo`: diagnose an input-bound training job on generated JPEGs (and fix it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_OUT = Path("cpuwise-report-demo")


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Annotated[Path, typer.Option("--out", help="Directory for images and reports.")] = DEFAULT_OUT,
        images: int = typer.Option(320, "--images", help="How many JPEGs to generate."),
        quick: bool = typer.Option(False, "--quick", help="Shorter runs (a smoke test)."),
        before_only: bool = typer.Option(False, "--before-only", help="Skip the cpuwise.data run."),
    ) -> None:
        """Make a JPEG data set, train a small CNN input-bound on purpose, and show the doctor's verdict."""
        # lazy: the CLI imports every subcommand; this one's libraries load when it runs
        from rich.console import Console

        from cpuwise.demo.run import run_demo

        if images < 64:
            typer.echo(f"--images must be >= 64 (two batches of 32), got {images}", err=True)
            raise typer.Exit(2)
        raise typer.Exit(run_demo(out, images, quick, Console(), after=not before_only))
