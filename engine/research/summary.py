"""A backtest's summary with its statistics: what `autotrader backtest --json`, the HTML report and
the sweeps print."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.research.benchmark import load_benchmark_closes
from engine.research.statistics import summary_statistics

if TYPE_CHECKING:
    from engine.backtest import BacktestReport


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def held_intervals(trades: list[dict[str, Any]]) -> list[tuple[date, date | None]]:
    """(entry day, exit day) of every closed trade."""
    return [(_day(t["entry_time"]), _day(t["exit_time"])) for t in trades]


def backtest_summary(report: BacktestReport, data_dir: Path) -> dict[str, Any]:
    """The report's own totals plus the statistics of engine/research/statistics.py."""
    payload = report.as_dict()
    statistics = summary_statistics(report.capital, report.equity, report.trades, held_intervals(report.trades),
                                    load_benchmark_closes(data_dir)) if report.equity else {}
    return {**payload["summary"], **statistics}
