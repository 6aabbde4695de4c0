"""`autotrader backtest`: statistics in --json, tables that fit 80 columns, the HTML report."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from typer.testing import CliRunner

from cli.backtest_cmd import monthly_table, per_symbol_table, summary_table, trades_table
from cli.main import app
from engine.models import IST

STATISTICS = {"cagr_pct", "sharpe", "sortino", "max_drawdown_pct", "profit_factor", "exposure_pct", "avg_r",
              "benchmark_return_pct", "monthly_returns_pct", "per_symbol"}


def _rendered(table: object) -> list[str]:
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text().splitlines()


def test_tables_fit_80_columns_with_one_line_per_trade() -> None:
    trades = [{"symbol": "BAJAJ-AUTO", "quantity": 12345, "entry_time": datetime(2024, 6, 3, 15, 15, tzinfo=IST),
               "exit_time": "2024-06-28T13:00:00+05:30", "entry_price": 12717.35, "exit_price": 12169.95,
               "net_pnl": -1_234_567.0, "exit_reason": "target (GTT)"}] * 3
    lines = _rendered(trades_table(trades))
    assert max(len(line) for line in lines) <= 80
    assert len(lines) == 2 + 3  # title, header, one line per trade: nothing wraps
    assert "2024-06-03" in lines[2] and "25" in lines[2].split()  # held 25 days
    summary: dict[str, Any] = {"trades": 3, "net_pnl": -1_234_567.0, "sharpe": None, "monthly_returns_pct": {}}
    monthly = {f"2024-{m:02d}": -12.3 for m in range(1, 13)}
    per_symbol = [{"symbol": f"S{i}", "trades": 1, "wins": 0, "net_pnl": -1.0 * i} for i in range(20)]
    for table in (summary_table("Backtest", summary), monthly_table(monthly), per_symbol_table(per_symbol)):
        assert max(len(line) for line in _rendered(table)) <= 80


def test_json_summary_carries_the_statistics_and_html_is_written(tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["backtest", "--from", "2024-06-03", "--to", "2024-06-28", "--symbols",
                                      "TATASTEEL,INFY,RELIANCE,SBIN,NTPC", "--json", "--html", str(html)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    summary = payload["summary"]
    assert set(summary) >= STATISTICS
    assert summary["benchmark_return_pct"] is not None and set(summary["monthly_returns_pct"]) == {"2024-06"}
    assert sum(row["trades"] for row in summary["per_symbol"]) == summary["trades"]
    if payload["trades"]:
        assert all(t["initial_risk"] > 0 for t in payload["trades"])
    text = html.read_text(encoding="utf-8")
    assert "Equity and drawdown" in text and "Monthly returns" in text


def test_timeframe_5min_and_the_errors_of_the_new_options(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["backtest", "--from", "2024-06-04", "--to", "2024-06-04", "--symbols", "SBIN",
                                      "--timeframe", "5min", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["timeframe"] == "5min" and payload["trading_days"] == 1 and len(payload["equity"]) == 1
    for arguments, message in (
        (["--from", "2024-06-04", "--to", "2024-06-04", "--timeframe", "1h"], "'1h' is not supported: use 1d or 5min"),
        (["--from", "2023-06-30", "--to", "2023-07-03", "--timeframe", "5min"], "no 5-minute bars"),
        (["--to", "2024-06-04"], "--from and --to are needed"),
        (["--frames", str(tmp_path / "none.frames")], "--frames"),
    ):
        refused = CliRunner().invoke(app, ["backtest", "--symbols", "SBIN", *arguments])
        assert refused.exit_code == 2 and message in refused.output, refused.output
