"""Entry point of the `autotrader` command."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from types import TracebackType

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
    "cli.instruments_cmd",  # autotrader instruments refresh|show
    "cli.corporate_actions_cmd",  # autotrader corporate-actions show|apply
    "cli.feed_cmd",  # autotrader feed serve|record
    "cli.indicators_cmd",  # autotrader metadata build, autotrader indicators
    "cli.report_cmd",  # autotrader report
    "cli.backtest_cmd",  # autotrader backtest
    "cli.broker_cmd",  # autotrader reconcile
    "cli.login_cmd",  # autotrader login zerodha|upstox
    "cli.demo_cmd",  # autotrader demo
    "cli.sweep_cmd",  # autotrader sweep
]


def _redacted_excepthook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    """An unexpected error still prints its traceback (a bug must be reportable), but redacted."""
    from engine.secrets import redact

    sys.stderr.write(redact("".join(traceback.format_exception(kind, error, trace))))


@app.callback()
def main() -> None:
    """autotrader: an automated NSE equity trading engine orchestrated by Prefect."""
    # Before any command prints or logs: broker credentials are registered secrets, redacted from every
    # log record, error and output line (engine/secrets.py); load_settings registers the database password.
    from engine.logging import configure_logging
    from engine.settings import load_credentials

    # Quiet by default (commands print their own output); AUTOTRADER_LOG_LEVEL turns engine logs on.
    level = os.environ.get("AUTOTRADER_LOG_LEVEL", "WARNING").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        level = "WARNING"  # the settings loader reports the bad value when a command loads settings
    configure_logging(level, load_credentials().secret_values())
    sys.excepthook = _redacted_excepthook  # after Typer installed its own


@app.command()
def version() -> None:
    """Print autotrader's version."""
    from importlib.metadata import version as package_version

    typer.echo(package_version("autotrader"))


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


if __name__ == "__main__":
    app()
