"""Helpers shared by CLI commands. Everything the CLI prints goes through `engine.secrets.redact`."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from engine.secrets import redact, redact_payload

if TYPE_CHECKING:
    from engine.session.stages import TradingDayContext
    from engine.settings import Settings


class RedactingConsole(Console):
    """A rich Console that never prints a secret: strings are redacted before rendering (so wrapping or
    highlighting cannot split a token), and the rendered output once more (for Text built elsewhere)."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(redact(text), **kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return redact(super()._render_buffer(buffer))


console = RedactingConsole()
err_console = RedactingConsole(stderr=True)


def compact_table(title: str) -> Table:
    """A borderless table, columns one space apart: seven or eight narrow columns fit 80 characters."""
    return Table(title=title, title_justify="left", box=None, padding=(0, 1), pad_edge=False, header_style="bold")


def json_safe(value: Any) -> Any:
    """NaN/inf → None: `json.dumps` would write NaN/Infinity, which is not JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def print_json(payload: Any) -> None:
    """Machine-readable output on stdout (no rich markup; strict JSON, NaN as null; secrets redacted)."""
    safe = redact_payload(json.loads(json.dumps(json_safe(payload), default=str, allow_nan=False)))
    typer.echo(json.dumps(safe, indent=2, sort_keys=False, allow_nan=False))


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a clear, redacted error (verbatim: paths and values may contain [brackets]) and return an
    Exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(redact(message))}", soft_wrap=True)  # unbroken paths
    return typer.Exit(code)


def parse_day(text: str, flag: str) -> date:
    """A YYYY-MM-DD option value, or a clear error naming the flag."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"{flag} {text!r} is not a date: use YYYY-MM-DD, e.g. 2024-06-04") from None


def settings_or_fail() -> Settings:
    """The settings, or the loader's message (key, value, rule) and exit code 2."""
    from engine.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise fail(str(exc)) from None


def trading_day_or_fail(day: str | None) -> TradingDayContext:
    """The day's context (settings, calendar, database; today when None), or a clear error and exit code 2."""
    from engine.clock import LiveClock
    from engine.session.stages import open_trading_day
    from engine.settings import SettingsError

    if day is not None:
        parse_day(day, "--date")
    try:
        return open_trading_day(day, LiveClock())
    except (SettingsError, ValueError) as exc:
        raise fail(str(exc)) from None
