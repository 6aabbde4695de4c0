"""`autotrader backtest`: the live decision path over historical daily or 5-minute bars (or recorded feed
frames), with the statistics traders read (engine/research/statistics.py), tables that fit 80 columns and
an optional HTML report."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cli.common import compact_table, console, fail, parse_day, print_json, settings_or_fail

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _day(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else date.fromisoformat(str(value)[:10])


def trades_table(trades: list[dict[str, Any]]) -> Table:
    table = compact_table(f"Trades ({len(trades)})")
    for column, justify in (("symbol", "left"), ("qty", "right"), ("entered", "left"), ("days", "right"),
                            ("entry", "right"), ("exit", "right"), ("net ₹", "right"), ("reason", "left")):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for t in trades:
        entered = _day(t["entry_time"])
        table.add_row(str(t["symbol"]), str(t["quantity"]), entered.isoformat(),
                      str((_day(t["exit_time"]) - entered).days), f"{t['entry_price']:.2f}", f"{t['exit_price']:.2f}",
                      f"{t['net_pnl']:,.0f}", str(t["exit_reason"])[:14])
    return table


SUMMARY_LABELS = {
    "trades": "trades", "win_rate": "win rate", "net_pnl": "net P&L (₹)", "charges": "charges (₹)",
    "final_equity": "final equity (₹)", "cagr_pct": "CAGR %", "sharpe": "Sharpe", "sortino": "Sortino",
    "max_drawdown_pct": "max drawdown %", "profit_factor": "profit factor", "exposure_pct": "exposure %",
    "avg_r": "average R", "benchmark_return_pct": "NIFTY 50 buy-and-hold %", "open_positions": "open at the end",
}


def summary_table(title: str, summary: dict[str, Any]) -> Table:
    table = compact_table(title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, label in SUMMARY_LABELS.items():
        value = summary.get(key)
        shown = "n/a" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
        table.add_row(label, shown)
    return table


def monthly_table(monthly: dict[str, float]) -> Table:
    table = compact_table("Monthly returns (%)")
    table.add_column("year")
    for month in MONTHS:
        table.add_column(month, justify="right")
    for year in sorted({key[:4] for key in monthly}):
        table.add_row(year, *(f"{monthly[key]:.1f}" if (key := f"{year}-{m:02d}") in monthly else ""
                              for m in range(1, 13)))
    return table


def per_symbol_table(rows: list[dict[str, Any]], limit: int = 10) -> Table:
    table = compact_table(f"By symbol (best and worst {limit // 2})" if len(rows) > limit else "By symbol")
    for column in ("symbol", "trades", "wins", "net ₹"):
        table.add_column(column, justify="left" if column == "symbol" else "right")
    shown = rows if len(rows) <= limit else rows[: limit // 2] + rows[-(limit // 2):]
    for row in shown:
        table.add_row(str(row["symbol"]), str(row["trades"]), str(row["wins"]), f"{row['net_pnl']:,.0f}")
    return table


def backtest_command(
    from_day: str = typer.Option(None, "--from", help="First day, YYYY-MM-DD (with --frames: default its first day)."),
    to_day: str = typer.Option(None, "--to", help="Last day, YYYY-MM-DD (with --frames: default its last day)."),
    symbols: str = typer.Option(None, "--symbols", help="Comma-separated symbols (default: the configured universe)."),
    timeframe: str = typer.Option("1d", "--timeframe", help="Bars the ticks are derived from: 1d (daily, long "
                                  "history) or 5min (intraday, the entry windows at their real times)."),
    frames: Path = typer.Option(None, "--frames", help="Replay a frame file written by the recorder instead of "
                                "bars (its ticks at their receive times)."),
    json_output: bool = typer.Option(False, "--json", help="Print trades, summary (with statistics) and the equity "
                                     "curve as JSON."),
    html: Path = typer.Option(None, "--html", help="Also write a self-contained HTML report (plotly) to this file."),
    plot_symbol: str = typer.Option(None, "--plot-symbol", help="The symbol whose trades the HTML report marks on "
                                    "its price (default: the most traded)."),
) -> None:
    """Run the configured strategy with the live risk, portfolio and paper-execution code over the
    bars in data/ (ticks derived from each daily or 5-minute bar, inside the bar) or over recorded feed
    frames. The summary adds CAGR, Sharpe, Sortino, drawdown, profit factor, exposure, average R and the
    NIFTY 50 buy-and-hold return over the same days (formulas in docs/strategy.md)."""
    from engine.backtest import BacktestError, run_backtest
    from engine.brokers.base import ConfigError
    from engine.data.instruments import InstrumentTableError
    from engine.research.summary import backtest_summary
    from engine.strategy.base import StrategyConfigError

    settings = settings_or_fail()
    if frames is None and (from_day is None or to_day is None):
        raise fail("--from and --to are needed (unless --frames gives the days)")
    if frames is not None and timeframe != "1d":
        raise fail("--frames replays recorded ticks: it takes no --timeframe")
    start = parse_day(from_day, "--from") if from_day is not None else None
    end = parse_day(to_day, "--to") if to_day is not None else None
    chosen = [s.strip().upper() for s in symbols.split(",") if s.strip()] if symbols else None
    try:
        report = asyncio.run(run_backtest(settings, start, end, chosen, timeframe=timeframe, frames=frames))
    except (BacktestError, ConfigError, InstrumentTableError, StrategyConfigError) as exc:
        raise fail(str(exc)) from None
    payload = report.as_dict()
    payload["summary"] = backtest_summary(report, Path(settings.data_dir))
    if html is not None:
        _write_html(html, payload, report, Path(settings.data_dir), plot_symbol)
    if json_output:
        print_json(payload)
        return
    console.print(trades_table(payload["trades"]))
    console.print(summary_table(f"Backtest {payload['start']} .. {payload['end']} ({payload['timeframe']}), "
                                f"{payload['symbols']} symbols, {payload['trading_days']} days", payload["summary"]))
    if payload["summary"].get("monthly_returns_pct"):
        console.print(monthly_table(payload["summary"]["monthly_returns_pct"]))
    if payload["summary"].get("per_symbol"):
        console.print(per_symbol_table(payload["summary"]["per_symbol"]))
    if html is not None:
        console.print(f"HTML report: {html}")


def _write_html(path: Path, payload: dict[str, Any], report: Any, data_dir: Path, plot_symbol: str | None) -> None:
    from engine.research.benchmark import load_benchmark_closes
    from engine.research.html_report import write_html_report
    from engine.storage import BarStore

    symbol = plot_symbol.upper() if plot_symbol else None
    if symbol is None and report.trades:
        symbol = Counter(t["symbol"] for t in report.trades).most_common(1)[0][0]
    bars = None
    if symbol is not None:
        timeframe = "5min" if report.timeframe == "5min" else "1d"  # trades on the bars they were run over
        frame = BarStore(data_dir / "bars").read(symbol, timeframe)
        bars = frame[(frame["ts"].dt.date >= report.start) & (frame["ts"].dt.date <= report.end)]
        if bars.empty:
            raise fail(f"--plot-symbol {symbol}: no {timeframe} bars between {report.start} and {report.end}")
    try:
        write_html_report(path, title=f"autotrader backtest {payload['start']} .. {payload['end']}",
                          capital=report.capital, equity=report.equity, trades=report.trades,
                          summary=payload["summary"], benchmark_closes=load_benchmark_closes(data_dir),
                          symbol=symbol, bars=bars)
    except OSError as exc:
        raise fail(f"--html {path}: cannot write the report: {exc.strerror}") from None


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest_command)
