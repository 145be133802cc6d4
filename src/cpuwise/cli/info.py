"""`cpuwise info`: the machine, the libraries and the thread pools a job will use."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info(
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Cores (affinity and cgroup quota), memory, CPU flags, GPUs, library versions, thread pools."""
        from cpuwise.envinfo import collect_env, render_env  # here: keeps every other command's start cheap

        env = collect_env()
        if as_json:
            typer.echo(json.dumps(env, indent=2, default=str))
        else:
            from rich.console import Console  # only for the table view

            Console().print(render_env(env))
