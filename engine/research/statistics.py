"""Backtest statistics, with the conventions traders read them in (docs/strategy.md, "Statistics").

- Returns are daily, of the equity marked to each trading day's closes, starting from `capital`.
- Annualisation uses 252 trading days; the risk-free rate is 0 unless given (annual, as a fraction).
- `sharpe` = mean(daily excess return) / stdev(daily return, sample) × √252.
- `sortino` = mean(daily excess return) / downside deviation × √252, where the downside deviation is
  √(mean(min(r − rf, 0)²)) over ALL days (the usual definition, as in quantstats/empyrical).
- `cagr_pct` compounds over calendar time: (final / capital)^(365.25 / days) − 1, with `days` from
  the day before the first trading day (when `capital` is held) to the last.
- `max_drawdown_pct` is the largest fall of the equity from a previous peak (capital included).
- `profit_factor` = gross profits / gross losses of closed trades' net P&L (None without a loss).
- `exposure_pct` = share of trading days on which a position was held at some point of the day.
- `avg_r` = mean of each trade's net P&L / its initial risk (quantity × (entry − initial stop)),
  over trades that carry `initial_risk`.
- `benchmark_return_pct` = buy-and-hold of the index from the last close before the first day to
  the close of the last day.
A statistic that cannot be computed (too few days, no trades) is None, never NaN."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

TRADING_DAYS_PER_YEAR = 252


def daily_returns(capital: float, equity: Sequence[float]) -> list[float]:
    """Day-over-day returns of the equity, the first against the starting capital."""
    values = [capital, *equity]
    return [values[i] / values[i - 1] - 1 for i in range(1, len(values)) if values[i - 1] > 0]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def sharpe(returns: Sequence[float], risk_free: float = 0.0) -> float | None:
    if len(returns) < 2:
        return None
    daily_rf = risk_free / TRADING_DAYS_PER_YEAR
    mean = _mean(returns)
    deviation = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    if deviation == 0:
        return None
    return (mean - daily_rf) / deviation * math.sqrt(TRADING_DAYS_PER_YEAR)


def sortino(returns: Sequence[float], risk_free: float = 0.0) -> float | None:
    if len(returns) < 2:
        return None
    daily_rf = risk_free / TRADING_DAYS_PER_YEAR
    downside = math.sqrt(_mean([min(r - daily_rf, 0.0) ** 2 for r in returns]))
    if downside == 0:
        return None
    return (_mean(returns) - daily_rf) / downside * math.sqrt(TRADING_DAYS_PER_YEAR)


def cagr_pct(capital: float, final: float, first_day: date, last_day: date) -> float | None:
    days = (last_day - (first_day - timedelta(days=1))).days
    if capital <= 0 or final <= 0 or days <= 0:
        return None
    return 100 * ((final / capital) ** (365.25 / days) - 1)


def drawdowns_pct(capital: float, equity: Iterable[float]) -> list[float]:
    """Each day's fall from the highest equity so far (the capital included), in % (>= 0)."""
    peak, falls = capital, []
    for value in equity:
        peak = max(peak, value)
        falls.append(100 * (peak - value) / peak if peak > 0 else 0.0)
    return falls


def max_drawdown_pct(capital: float, equity: Iterable[float]) -> float:
    return max(drawdowns_pct(capital, equity), default=0.0)


def profit_factor(trades: Iterable[Mapping[str, Any]]) -> float | None:
    pnl = [float(t["net_pnl"]) for t in trades]
    losses = -sum(p for p in pnl if p < 0)
    return sum(p for p in pnl if p > 0) / losses if losses > 0 else None


def avg_r(trades: Iterable[Mapping[str, Any]]) -> float | None:
    multiples = [float(t["net_pnl"]) / float(t["initial_risk"]) for t in trades if (t.get("initial_risk") or 0) > 0]
    return _mean(multiples) if multiples else None


def exposure_pct(days: Sequence[date], held: Iterable[tuple[date, date | None]]) -> float | None:
    """`held`: (first day, last day or None while still open) of each position."""
    if not days:
        return None
    intervals = list(held)
    exposed = sum(1 for day in days if any(start <= day and (end is None or day <= end) for start, end in intervals))
    return 100 * exposed / len(days)


def monthly_returns(capital: float, equity: Sequence[tuple[date, float]]) -> dict[str, float]:
    """{"YYYY-MM": return in % of that month}, from the previous month's last equity (or capital)."""
    result: dict[str, float] = {}
    previous = capital
    for index, (day, value) in enumerate(equity):
        last_of_month = index + 1 == len(equity) or equity[index + 1][0].month != day.month
        if last_of_month:
            result[f"{day:%Y-%m}"] = 100 * (value / previous - 1) if previous > 0 else 0.0
            previous = value
    return result


def per_symbol(trades: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per symbol: trades, wins, win rate, net P&L; the biggest earners first."""
    rows: dict[str, dict[str, Any]] = {}
    for trade in trades:
        row = rows.setdefault(str(trade["symbol"]), {"symbol": trade["symbol"], "trades": 0, "wins": 0,
                                                     "net_pnl": 0.0})
        row["trades"] += 1
        row["wins"] += float(trade["net_pnl"]) > 0
        row["net_pnl"] += float(trade["net_pnl"])
    for row in rows.values():
        row["win_rate"] = round(row["wins"] / row["trades"], 4)
        row["net_pnl"] = round(row["net_pnl"], 2)
    return sorted(rows.values(), key=lambda row: (-row["net_pnl"], row["symbol"]))


def benchmark_return_pct(closes: Mapping[date, float], first_day: date, last_day: date) -> float | None:
    before = [day for day in closes if day < first_day]
    until = [day for day in closes if first_day <= day <= last_day]
    if not before or not until:
        return None
    return 100 * (closes[max(until)] / closes[max(before)] - 1)


def summary_statistics(
    capital: float,
    equity: Sequence[tuple[date, float]],
    trades: Sequence[Mapping[str, Any]],
    held: Iterable[tuple[date, date | None]],
    benchmark_closes: Mapping[date, float] | None = None,
    risk_free: float = 0.0,
) -> dict[str, Any]:
    """Every statistic of the backtest summary, rounded for reading; None where undefined."""
    days = [day for day, _ in equity]
    values = [value for _, value in equity]
    returns = daily_returns(capital, values)

    def rounded(value: float | None, digits: int = 4) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "cagr_pct": rounded(cagr_pct(capital, values[-1], days[0], days[-1]) if days else None),
        "sharpe": rounded(sharpe(returns, risk_free)),
        "sortino": rounded(sortino(returns, risk_free)),
        "max_drawdown_pct": round(max_drawdown_pct(capital, values), 4),
        "profit_factor": rounded(profit_factor(trades)),
        "exposure_pct": rounded(exposure_pct(days, held), 2),
        "avg_r": rounded(avg_r(trades)),
        "benchmark_return_pct": rounded(benchmark_return_pct(benchmark_closes, days[0], days[-1]))
        if benchmark_closes and days else None,
        "monthly_returns_pct": {month: round(value, 4) for month, value in monthly_returns(capital, equity).items()},
        "per_symbol": per_symbol(trades),
    }
