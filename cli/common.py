"""Helpers shared by CLI commands."""

from __future__ import annotations

import json
import math
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


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
    """Machine-readable output on stdout (no rich markup; strict JSON, NaN as null)."""
    typer.echo(json.dumps(json_safe(payload), indent=2, default=str, sort_keys=False, allow_nan=False))


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a clear error (verbatim: paths and values may contain [brackets]) and return an Exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # unbroken paths
    return typer.Exit(code)
