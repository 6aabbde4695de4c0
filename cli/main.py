"""Entry point of the `autotrader` command."""

from __future__ import annotations

import importlib
import os

import typer

app = typer.Typer(
    name="autotrader",
    help="autotrader: an automated NSE equity trading engine orchestrated by Prefect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstrings wrap as paragraphs, not at their source line breaks
)

# Each module defines `register(app: typer.Typer) -> None`.
COMMAND_MODULES = [
    "cli.calendar_cmd",  # autotrader calendar
    "cli.data_cmd",  # autotrader data import|build
    "cli.feed_cmd",  # autotrader feed serve|record
    "cli.indicators_cmd",  # autotrader metadata build, autotrader indicators
    "cli.report_cmd",  # autotrader report, autotrader backtest
    "cli.broker_cmd",  # autotrader reconcile
    "cli.demo_cmd",  # autotrader demo
]


@app.callback()
def main() -> None:
    """autotrader: an automated NSE equity trading engine orchestrated by Prefect."""
    # Before any command logs: broker credentials are redacted from every log record.
    from engine.logging import configure_logging
    from engine.settings import load_credentials

    # Quiet by default (commands print their own output); AUTOTRADER_LOG_LEVEL turns engine logs on.
    level = os.environ.get("AUTOTRADER_LOG_LEVEL", "WARNING").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        level = "WARNING"  # the settings loader reports the bad value when a command loads settings
    configure_logging(level, load_credentials().secret_values())


@app.command()
def version() -> None:
    """Print autotrader's version."""
    from importlib.metadata import version as package_version

    typer.echo(package_version("autotrader"))


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


if __name__ == "__main__":
    app()
