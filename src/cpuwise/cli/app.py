"""The `cpuwise` console script. Subcommands live one per module and register themselves."""

from __future__ import annotations

import importlib

import typer

# (module, purpose) — each module defines `register(app: typer.Typer) -> None`.
SUBCOMMAND_MODULES = (
    "cpuwise.cli.info",
    "cpuwise.cli.doctor",
    "cpuwise.cli.demo",
    "cpuwise.cli.optimize",
    "cpuwise.cli.bench",
    "cpuwise.cli.plan",
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="cpuwise",
        help="Find and fix the CPU side of deep learning.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(app)
    return app


def main() -> None:
    build_app()()


if __name__ == "__main__":  # pragma: no cover
    main()
