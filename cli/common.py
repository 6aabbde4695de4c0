"""Helpers shared by CLI commands."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_json(payload: Any) -> None:
    """Machine-readable output on stdout (no rich markup)."""
    typer.echo(json.dumps(payload, indent=2, default=str, sort_keys=False))


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a clear error and return an Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)
