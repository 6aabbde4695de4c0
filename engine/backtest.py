"""Backtest: the live decision path (`TradingEngine`, the configured strategy, risk and
portfolio code, the real `OrderManager` and the paper broker) run over historical DAILY bars.

Ticks are not in the data: each daily bar becomes a few ticks along a path that stays inside the
bar's real open/high/low/close — open at 09:15, then low and high (high first on a down day) at
11:00 and 13:00, and the close at 15:10, 15:15 and 15:29 — on a `SteppedClock`. The entry window
is executed at 15:10:30 (when the default window 15:10–15:25 is open), so market entries fill on
the 15:15 close tick with the paper broker's slippage; GTT exits fire when a later bar's path
crosses the stop or the target. Indicators are warmed up on the history before `start`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlmodel import select

from engine.brokers.factory import check_venue_allowed
from engine.brokers.paper import PaperBroker
from engine.calendar import load_calendar
from engine.clock import SteppedClock
from engine.data.instruments import filter_universe, load_instrument_table, to_instrument
from engine.execution.manager import OrderManager
from engine.indicators.multitimeframe import InstrumentIndicators
from engine.models import IST, Bar, Instrument, Tick, Timeframe
from engine.portfolio.times import row_as_json
from engine.settings import Settings
from engine.storage import BarStore, init_db, session_scope
from engine.storage.tables import PositionRow, TradeRow
from engine.strategy.base import Strategy
from engine.strategy.registry import load_strategy
from engine.strategy.window import SessionLike, normal_session
from engine.trader import DaySummary, TradingEngine, required_indicator_config

log = logging.getLogger(__name__)

# when each price of `bar_path` trades, then the close again so entries and exits can settle
_PATH_TIMES = (time(9, 15), time(11, 0), time(13, 0), time(15, 10))
_SETTLE_TIMES = (time(15, 15), time(15, 29))
_VOLUME_SHARES = (0.05, 0.35, 0.65, 0.95, 1.0, 1.0)  # fraction of the day's volume traded by each tick
_WINDOW_AT = time(15, 10, 30)


class BacktestError(ValueError):
    """Bad backtest input (dates, symbols, missing data)."""


def bar_path(bar: Bar) -> list[float]:
    """Open, the two extremes (low first on an up day, high first on a down day), close."""
    if bar.close >= bar.open:
        return [bar.open, bar.low, bar.high, bar.close]
    return [bar.open, bar.high, bar.low, bar.close]


@dataclass(slots=True)
class BacktestReport:
    start: date
    end: date
    symbols: list[str]
    capital: float
    days: list[DaySummary] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    equity: list[tuple[date, float]] = field(default_factory=list)  # marked to the day's closes
    open_positions: int = 0

    @property
    def net_pnl(self) -> float:
        return round(sum(t["net_pnl"] for t in self.trades), 2)

    @property
    def gross_pnl(self) -> float:
        return round(sum(t["gross_pnl"] for t in self.trades), 2)

    @property
    def charges(self) -> float:
        return round(sum(t["charges"] for t in self.trades), 2)

    @property
    def win_rate(self) -> float | None:
        if not self.trades:
            return None
        return round(sum(1 for t in self.trades if t["net_pnl"] > 0) / len(self.trades), 4)

    def _drawdowns(self) -> list[tuple[float, float]]:
        """(peak, fall from it) of the marked-to-market equity on each day."""
        peak, result = self.capital, []
        for _, value in self.equity:
            peak = max(peak, value)
            result.append((peak, peak - value))
        return result

    @property
    def max_drawdown(self) -> float:
        """Largest fall of the marked-to-market equity from a previous peak, in rupees."""
        return round(max((fall for _, fall in self._drawdowns()), default=0.0), 2)

    @property
    def max_drawdown_pct(self) -> float:
        return round(100 * max((fall / peak for peak, fall in self._drawdowns()), default=0.0), 4)

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "symbols": len(self.symbols),
            "trading_days": len(self.days),
            "capital": self.capital,
            "trades": self.trades,
            "summary": {
                "trades": len(self.trades),
                "wins": sum(1 for t in self.trades if t["net_pnl"] > 0),
                "win_rate": self.win_rate,
                "gross_pnl": self.gross_pnl,
                "charges": self.charges,
                "net_pnl": self.net_pnl,
                "max_drawdown": self.max_drawdown,
                "max_drawdown_pct": self.max_drawdown_pct,
                "final_equity": round(self.equity[-1][1], 2) if self.equity else self.capital,
                "open_positions": self.open_positions,
                "setups": sum(d.setups for d in self.days),
                "entries": sum(d.entries for d in self.days),
                "strategy_errors": sum(d.strategy_errors for d in self.days),
            },
            "equity": [{"date": d.isoformat(), "equity": round(v, 2)} for d, v in self.equity],
        }


def _frame_bars(symbol: str, frame: pd.DataFrame) -> list[Bar]:
    return [
        Bar(symbol, ts.to_pydatetime(), float(o), float(h), float(lo), float(c), int(v), Timeframe.DAY)
        for ts, o, h, lo, c, v in zip(frame["ts"], frame["open"], frame["high"], frame["low"], frame["close"],
                                      frame["volume"], strict=True)
    ]


def _ticks(instrument: Instrument, bar: Bar, previous_close: float, day: date) -> list[tuple[datetime, Tick]]:
    prices = bar_path(bar) + [bar.close] * len(_SETTLE_TIMES)
    result = []
    for when, price, share in zip(_PATH_TIMES + _SETTLE_TIMES, prices, _VOLUME_SHARES, strict=True):
        moment = datetime.combine(day, when, tzinfo=IST)
        result.append((moment, Tick(instrument.instrument_key, price, int(moment.timestamp() * 1000),
                                    volume=int(bar.volume * share), close_prev=previous_close)))
    return result


class Backtest:
    """One run over [start, end]. `symbols` None: the configured universe from the instrument table."""

    def __init__(
        self,
        settings: Settings,
        start: date,
        end: date,
        symbols: list[str] | None = None,
        *,
        data_dir: Path | None = None,
        strategy: Strategy | None = None,
        database_url: str = "sqlite://",
    ) -> None:
        if end < start:
            raise BacktestError(f"--to {end} is before --from {start}")
        self.settings = settings
        self.start, self.end = start, end
        self.data_dir = Path(data_dir or settings.data_dir)
        self.strategy = strategy or load_strategy(settings)
        self.database_url = database_url
        table = load_instrument_table(self.data_dir)
        if symbols:
            unknown = sorted(set(symbols) - set(table["symbol"]))
            if unknown:
                where = self.data_dir / "instruments.parquet"
                raise BacktestError(f"unknown symbol(s) {', '.join(unknown)} (not in {where})")
            table = table[table["symbol"].isin(symbols)]
        else:
            universe = settings.universe
            table = filter_universe(table, universe.min_market_cap_cr, universe.max_instruments,
                                    universe.require_complete_history)
        self.table = table
        self.instruments = [to_instrument(row) for _, row in table.iterrows()]
        self.history_complete = {str(r["symbol"]): bool(r.get("history_complete", True)) for _, r in table.iterrows()}

    def _load(self) -> tuple[dict[str, InstrumentIndicators], dict[str, dict[date, Bar]]]:
        store = BarStore(self.data_dir / "bars")
        config = required_indicator_config(self.settings, self.strategy)
        indicators: dict[str, InstrumentIndicators] = {}
        bars: dict[str, dict[date, Bar]] = {}
        for instrument in self.instruments:
            symbol = instrument.symbol
            history = _frame_bars(symbol, store.read(symbol, Timeframe.DAY, end=self.end + timedelta(days=1)))
            ind = InstrumentIndicators(symbol, config, instrument.instrument_key, self.history_complete[symbol])
            for bar in history:
                if bar.day < self.start:
                    ind.on_bar(bar)
            indicators[symbol] = ind
            bars[symbol] = {bar.day: bar for bar in history if bar.day >= self.start}
        return indicators, bars

    def _sessions(self, days: list[date]) -> dict[date, SessionLike | None]:
        try:
            calendar = load_calendar(self.settings.calendar_file)
            return {day: calendar.session(day) if calendar.covers(day) else normal_session(day) for day in days}
        except (OSError, ValueError):
            return {day: normal_session(day) for day in days}

    async def run(self) -> BacktestReport:
        indicators, bars = self._load()
        days = sorted({day for by_day in bars.values() for day in by_day if self.start <= day <= self.end})
        if not days:
            raise BacktestError(f"no daily bars between {self.start} and {self.end} for the chosen symbols")
        sessions = self._sessions(days)
        check_venue_allowed(self.settings, replay=True)  # refuses a real broker's settings (VenueRefused)
        log.info("backtest %s .. %s: paper broker (simulated)", self.start, self.end)
        db = init_db(self.database_url)
        clock = SteppedClock(datetime.combine(days[0], time(9, 0), tzinfo=IST))
        broker = PaperBroker.from_settings(self.settings, clock, instruments=self.instruments, db=db)
        report = BacktestReport(self.start, self.end, [i.symbol for i in self.instruments], self.settings.capital)
        last_close: dict[str, float] = {}
        for day in days:
            clock.set(datetime.combine(day, time(9, 0), tzinfo=IST))
            manager = OrderManager(broker, db, clock, trading_day=day)
            engine = TradingEngine(self.settings, clock, self.instruments, indicators, self.strategy, manager, db, day,
                                   broker, session=sessions[day])
            await engine.resume()
            timeline: dict[datetime, list[Tick]] = {}
            for instrument in self.instruments:
                bar = bars[instrument.symbol].get(day)
                if bar is None:
                    continue
                for moment, tick in _ticks(instrument, bar, last_close.get(instrument.symbol, bar.open), day):
                    timeline.setdefault(moment, []).append(tick)
                last_close[instrument.symbol] = bar.close
            window_at = datetime.combine(day, _WINDOW_AT, tzinfo=IST)
            window_done = False
            for moment in sorted(timeline):
                if not window_done and moment > window_at:
                    clock.set(window_at)
                    await engine.execute_entry_window()
                    window_done = True
                clock.set(moment)
                await engine.on_ticks(timeline[moment])
            summary = await engine.end_of_day()
            report.days.append(summary)
            equity = self.settings.capital + sum(d.net_pnl for d in report.days) + sum(
                p.quantity * (last_close.get(p.instrument.symbol, p.average_price) - p.average_price)
                for p in engine.positions.open.values()
            )
            report.equity.append((day, equity))
            report.open_positions = summary.open_positions
        with session_scope(db) as session:
            rows = session.exec(select(TradeRow).order_by(TradeRow.exit_time)).all()  # type: ignore[arg-type]
            risks = {p.id: p.initial_risk for p in session.exec(select(PositionRow)).all()}
            report.trades = [_trade_dict(row, risks.get(row.position_id)) for row in rows]
        return report


def _trade_dict(row: TradeRow, initial_risk: float | None) -> dict[str, Any]:
    """A closed trade with the risk it was opened with (rupees, for its R multiple)."""
    data = row_as_json(row)
    data.pop("id", None)
    data.pop("position_id", None)
    data["initial_risk"] = initial_risk
    return data


async def run_backtest(
    settings: Settings,
    start: date,
    end: date,
    symbols: list[str] | None = None,
    *,
    data_dir: Path | None = None,
    strategy: Strategy | None = None,
) -> BacktestReport:
    return await Backtest(settings, start, end, symbols, data_dir=data_dir, strategy=strategy).run()


__all__ = ["Backtest", "BacktestError", "BacktestReport", "bar_path", "run_backtest"]
