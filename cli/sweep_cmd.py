"""`autotrader sweep`: a parameter grid (or a walk-forward analysis) of backtests as a Prefect flow on a
Dask cluster: a local one by default, an existing one with --dask-address."""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.common import console, fail, parse_day, print_json


def _print_results(payload: dict[str, Any]) -> None:
    objective = payload["objective"]
    if "results" in payload:
        keys = list(payload["results"][0]["params"]) if payload["results"] else []
        table = Table(title=f"Sweep {payload['start']} .. {payload['end']} (best {objective}: {payload['best']})",
                      title_justify="left")
        for column in [*keys, "trades", "net P&L", objective, "max DD %"]:
            table.add_column(column, justify="right", no_wrap=True)
        for result in payload["results"]:
            summary = result["summary"]
            table.add_row(*[result["params"][k] for k in keys], str(summary.get("trades")),
                          f"{summary.get('net_pnl', 0):,.0f}", _number(summary.get(objective)),
                          _number(summary.get("max_drawdown_pct")))
        console.print(table)
        return
    table = Table(title=f"Walk-forward {payload['start']} .. {payload['end']} ({objective})", title_justify="left")
    for column in ("test from", "test to", "best parameters", f"in {objective}", f"out {objective}", "out P&L"):
        table.add_column(column, no_wrap=column != "best parameters")
    for window in payload["walk_forward"]:
        table.add_row(window["out_of_sample_from"], window["out_of_sample_to"],
                      ", ".join(f"{k}={v}" for k, v in window["best_params"].items()),
                      _number(window["in_sample"].get(objective)), _number(window["out_of_sample"].get(objective)),
                      f"{window['out_of_sample'].get('net_pnl', 0):,.0f}")
    console.print(table)


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def sweep_command(
    from_day: str = typer.Option(..., "--from", help="First day, YYYY-MM-DD."),
    to_day: str = typer.Option(..., "--to", help="Last day, YYYY-MM-DD."),
    param: list[str] = typer.Option(..., "--param", help="A setting and its values, e.g. risk.reward_risk=1.5,2,3 "
                                    "(repeat for a grid)."),
    symbols: str = typer.Option(None, "--symbols", help="Comma-separated symbols (default: the configured universe)."),
    objective: str = typer.Option("sharpe", "--objective", help="What 'best' means: sharpe, net_pnl, cagr_pct, "
                                  "profit_factor or sortino."),
    dask_address: str = typer.Option(None, "--dask-address", help="An existing Dask scheduler, e.g. "
                                     "tcp://host:8786 (default: a local cluster)."),
    workers: int = typer.Option(2, "--workers", min=1, max=64, help="Worker processes of the local cluster."),
    walk_forward: bool = typer.Option(False, "--walk-forward", help="Fit on in-sample windows, test the best "
                                      "combination on the following out-of-sample window, roll forward."),
    in_sample_months: int = typer.Option(12, "--in-sample-months", min=1, help="In-sample window (walk-forward)."),
    out_of_sample_months: int = typer.Option(3, "--out-of-sample-months", min=1,
                                             help="Out-of-sample window and roll step (walk-forward)."),
    json_output: bool = typer.Option(False, "--json", help="Print one result per combination (or window) as JSON."),
) -> None:
    """Backtest every combination of the --param values on the live decision path, as the Prefect flow
    `parameter-sweep` on a Dask cluster; the flow run keeps a heatmap artifact."""
    from cli.demo_cmd import prefect_environment
    from engine.research import sweep

    start, end = parse_day(from_day, "--from"), parse_day(to_day, "--to")
    if end < start:
        raise fail("--to must be on or after --from")
    try:
        combinations = sweep.grid([sweep.parse_parameter(text) for text in param])
        for combination in combinations:
            sweep.settings_for(combination)  # a bad value fails here, before any cluster starts
        if objective not in sweep.OBJECTIVES:
            raise sweep.SweepError(f"--objective {objective!r}: expected one of {', '.join(sweep.OBJECTIVES)}")
        if walk_forward:
            sweep.walk_forward_windows(start, end, in_sample_months, out_of_sample_months)
    except sweep.SweepError as error:
        raise fail(str(error)) from None
    os.environ.update(prefect_environment())

    import flows.sweep as sweep_flow  # imports prefect: after PREFECT_HOME is set

    chosen = [s.strip().upper() for s in symbols.split(",") if s.strip()] if symbols else None
    runner = sweep_flow.dask_task_runner(dask_address, workers)
    progress = Progress(TextColumn("backtests"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True)
    with sweep_flow.shared_api(), progress:
        bar = progress.add_task("backtests", total=None)
        sweep_flow.progress_hook = lambda done, total: progress.update(bar, completed=done, total=total)
        try:
            payload = sweep_flow.parameter_sweep.with_options(task_runner=runner)(
                params=list(param), start=start.isoformat(), end=end.isoformat(), symbols=chosen,
                objective=objective, in_sample_months=in_sample_months if walk_forward else None,
                out_of_sample_months=out_of_sample_months if walk_forward else None)
        except Exception as error:  # a failed backtest or an unreachable cluster: one clear line
            raise fail(f"sweep failed: {type(error).__name__}: {error}") from None
        finally:
            sweep_flow.progress_hook = None
    if json_output:
        print_json(payload)
    else:
        _print_results(payload)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_command)
