"""Backtest: the live decision path (`TradingEngine`, the configured strategy, risk and
portfolio code, the real `OrderManager` and the paper broker) run over historical bars or recorded
feed frames, on a `SteppedClock`, one day after another: one engine rolled over the days
(`TradingEngine.start_day`) on a `MemoryDatabase` (the repositories' in-memory stores: no SQL; the trades
are read from them once, at the end). Three sources of ticks (`timeframe`):

* "1d" (long history): each DAILY bar becomes a few ticks along a path that stays inside the bar's
  real open/high/low/close — open at 09:15, then low and high (high first on a down day) at 11:00
  and 13:00, and the close at 15:10, 15:15 and 15:29. The entry window is executed once, at
  15:10:30 (when the default window 15:10–15:25 is open), so market entries fill on the 15:15 close
  tick with the paper broker's slippage; GTT exits fire when a later bar's path crosses the stop or
  the target.
* "5min" (intraday): the ticks the replay server derives from each 5-minute bar (`engine.feed.synth`:
  seven points per bar, inside its real range) at their real times. The configured entry windows
  (`entry_windows`) are executed at their real times, as the live session does: at each window's
  open and every `ENTRY_POLL` while it stays open; GTT exits trigger on the 5-minute path.
* "frames": a frame file written by the recorder (`engine.feed.recorder`), its ticks and market
  status handed to the engine at their receive times (out-of-order and repeated ticks dropped, as
  the feed client does); entry windows as in "5min".

In every mode the daily indicators are warmed up on the daily history before the first day (as the
live pre-open metadata is) and each day's bar then builds up from that day's ticks."""

from __future__ import annotations

import gc
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.brokers.factory import check_venue_allowed
from engine.brokers.paper import PaperBroker
from engine.calendar import load_calendar
from engine.clock import SteppedClock
from engine.data.instruments import filter_universe, load_instrument_table, to_instrument
from engine.execution.manager import OrderManager
from engine.feed.decoder import FrameDecodeError, decode_frame
from engine.feed.framefile import FrameFileError
from engine.feed.replay import FrameTape, ReplayError
from engine.feed.synth import day_ticks
from engine.indicators.metadata import READ_THREADS, build_metadata, read_daily_columns
from engine.indicators.multitimeframe import InstrumentIndicators, day_from_number, day_number
from engine.models import IST, Bar, Instrument, MarketStatus, Tick, Timeframe
from engine.session.live import ENTRY_POLL, FEED_SEGMENT
from engine.settings import Settings
from engine.storage import BarStore
from engine.storage.memory import MemoryDatabase
from engine.storage.positions import position_store
from engine.strategy.base import Strategy
from engine.strategy.registry import load_strategy
from engine.strategy.window import EntryWindow, SessionLike, normal_session
from engine.trader import DaySummary, TradingEngine, required_indicator_config
from engine.trading.entries import REFRESH_MS

log = logging.getLogger(__name__)

DAILY, FIVE_MINUTES, FRAMES = "1d", "5min", "frames"
TIMEFRAMES = (DAILY, FIVE_MINUTES)  # what --timeframe accepts; FRAMES is chosen by --frames
# The daily path's close tick: what a rule that signals "on the close" acts on (the window runs after it).
DAILY_CLOSE_AT = time(15, 10)
# when each price of `bar_path` trades, then the close again so entries and exits can settle
_PATH_TIMES = (time(9, 15), time(11, 0), time(13, 0), DAILY_CLOSE_AT)
_SETTLE_TIMES = (time(15, 15), time(15, 29))
_VOLUME_SHARES = (0.05, 0.35, 0.65, 0.95, 1.0, 1.0)  # fraction of the day's volume traded by each tick
_WINDOW_AT = time(15, 10, 30)
_DAYS_AT_ONCE = 64  # days of bars gathered across the instruments at once


# the cyclic collector's first threshold during a run (Python's default: 700 allocations)
_RUN_GC_THRESHOLD = 50_000


class BacktestError(ValueError):
    """Bad backtest input (dates, symbols, timeframe, missing data)."""


@dataclass(slots=True)
class Step:
    """What reaches the engine at one moment of a backtested day: ticks, or the feed's market status."""

    at: datetime
    ticks: list[Tick] = field(default_factory=list)
    status: MarketStatus | None = None


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
    timeframe: str = DAILY

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
            "timeframe": self.timeframe,
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


def _frame_bars(symbol: str, frame: pd.DataFrame, timeframe: Timeframe) -> list[Bar]:
    """A `BarStore.read` frame as bars (its schema's float64 and int64 columns become Python floats and ints
    column by column: a third of the cost of converting each row's values)."""
    columns = [frame[name].tolist() for name in ("open", "high", "low", "close", "volume")]
    return [Bar(symbol, ts, o, h, lo, c, v, timeframe)
            for ts, o, h, lo, c, v in zip(frame["ts"].dt.to_pydatetime().tolist(), *columns, strict=True)]


@contextmanager
def _rarer_collections() -> Iterator[None]:
    """A run allocates millions of short-lived objects (ticks, snapshots, events) beside a large heap of
    long-lived ones (the bars, the indicators' history): at the default threshold the cyclic garbage
    collector's passes over that heap took a third of a daily run. It runs 70x less often meanwhile."""
    thresholds = gc.get_threshold()
    gc.set_threshold(_RUN_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


class DailyBars:
    """The daily bars of the run, kept column-wise (a `Bar` is made only on the day it is used: 500 symbols x
    6 years of Bar objects would hold a quarter of a GB): per symbol, its days (epoch days, see `day_number`) and
    an (n, 5) array of open, high, low, close, volume."""

    def __init__(self) -> None:
        self._days: dict[str, np.ndarray] = {}
        self._values: dict[str, np.ndarray] = {}

    def read(self, store: BarStore, symbol: str, start: date, end: date) -> None:
        """`symbol`'s daily bars of [start, end] from `store` (none without a file)."""
        columns = read_daily_columns(store, symbol)
        if columns is None:
            self._days[symbol], self._values[symbol] = np.empty(0, np.int64), np.empty((0, 5))
            return
        days, *values = columns
        wanted = (days >= day_number(start)) & (days <= day_number(end))
        self._days[symbol] = days[wanted]
        self._values[symbol] = np.column_stack([column[wanted] for column in values])

    def days(self, symbol: str) -> list[date]:
        return [day_from_number(day) for day in self._days[symbol].tolist()]

    def all_days(self) -> list[date]:
        every = np.unique(np.concatenate([np.empty(0, np.int64), *self._days.values()]))
        return [day_from_number(day) for day in every.tolist()]

    def grid(self, symbols: list[str], days: list[date]) -> np.ndarray:
        """(day, symbol, value): each symbol's open, high, low, close and volume on each of `days`, NaN where it
        has no bar."""
        wanted = np.array([day_number(day) for day in days], dtype=np.int64)
        grid = np.full((len(days), len(symbols), 5), np.nan)
        for column, symbol in enumerate(symbols):
            known = self._days[symbol]
            at = np.searchsorted(known, wanted).clip(max=max(len(known) - 1, 0))
            found = (known[at] == wanted) if len(known) else np.zeros(len(days), bool)
            grid[found, column] = self._values[symbol][at[found]]
        return grid


def _listed(items: Iterable[object], limit: int) -> str:
    """The first `limit` items, then how many more."""
    shown = [str(item) for item in items]
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def _daily_tick_times(day: date) -> list[int]:
    """When (epoch ms) each tick derived from a daily bar of `day` trades."""
    return [int(datetime.combine(day, when, tzinfo=IST).timestamp() * 1000) for when in _PATH_TIMES + _SETTLE_TIMES]


def bar_path(bar: Bar) -> list[float]:
    """Open, the two extremes (low first on an up day, high first on a down day), close: the path the daily ticks
    take (`_daily_path` of one bar, without the settle ticks)."""
    path = _daily_path(np.array([[bar.open, bar.high, bar.low, bar.close, bar.volume]], dtype=np.float64))
    return [float(prices[0]) for prices in path[:len(_PATH_TIMES)]]


def _daily_path(bars: np.ndarray) -> list[np.ndarray]:
    """For each of `bars` (rows of open, high, low, close, volume) its path: the open, the two extremes (low
    first on an up day, high first on a down day), the close, then the close again at each settle time; one
    array per tick time."""
    open_, high, low, close = bars[:, 0], bars[:, 1], bars[:, 2], bars[:, 3]
    rising = close >= open_
    return [open_, np.where(rising, low, high), np.where(rising, high, low), close] + [close] * len(_SETTLE_TIMES)


def _steps_by_time(ticks: Iterable[Tick]) -> list[Step]:
    """One step per tick time, in time order; a step's ticks in instrument-key order (as the live session
    sorts a frame's ticks), so fills and their ties are the same whatever order the instruments came in."""
    by_time: dict[int, list[Tick]] = {}
    for tick in ticks:
        by_time.setdefault(tick.ltt_ms, []).append(tick)
    return [Step(_ms_time(ms), sorted(by_time[ms], key=attrgetter("instrument_key"))) for ms in sorted(by_time)]


def _ms_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, IST)


def _frame_steps(path: Path) -> dict[date, list[Step]]:
    """A recorded frame file as steps by day: each frame at its receive time, its ticks (in live order,
    without the out-of-order and repeated ones the feed client drops) and any change of the NSE_EQ status;
    malformed frames are skipped."""
    try:
        tape = FrameTape(path)
    except (OSError, FrameFileError, ReplayError) as exc:
        raise BacktestError(f"--frames {path}: {exc}") from None
    last: dict[str, Tick] = {}
    days: dict[date, list[Step]] = {}
    for recv_ms, data in tape.frames:
        try:
            frame = decode_frame(data)
        except FrameDecodeError:
            continue
        status = (frame.market_status or {}).get(FEED_SEGMENT)
        fresh = []
        for tick in sorted(frame.ticks, key=attrgetter("ltt_ms", "instrument_key")):
            seen = last.get(tick.instrument_key)
            if seen is not None and (tick.ltt_ms < seen.ltt_ms or
                                     (tick.ltt_ms == seen.ltt_ms and tick.volume <= seen.volume)):
                continue
            last[tick.instrument_key] = tick
            fresh.append(tick)
        if fresh or status is not None:
            moment = _ms_time(recv_ms)
            days.setdefault(moment.date(), []).append(Step(moment, fresh, status))
    return days


class Backtest:
    """One run over [start, end]. `symbols` None: the configured universe from the instrument table.
    `timeframe` "1d" or "5min"; `frames` (a recorded frame file) replaces the bars, and `start`/`end`
    default to its first and last day."""

    def __init__(
        self,
        settings: Settings,
        start: date | None,
        end: date | None,
        symbols: list[str] | None = None,
        *,
        data_dir: Path | None = None,
        strategy: Strategy | None = None,
        timeframe: str = DAILY,
        frames: Path | None = None,
    ) -> None:
        if timeframe not in TIMEFRAMES:
            raise BacktestError(f"--timeframe {timeframe!r} is not supported: use {' or '.join(TIMEFRAMES)}")
        self.frame_days = _frame_steps(Path(frames)) if frames is not None else None
        if self.frame_days is not None:
            start = start or min(self.frame_days)
            end = end or max(self.frame_days)
        if start is None or end is None:
            raise BacktestError("--from and --to are needed (unless --frames gives the days)")
        if end < start:
            raise BacktestError(f"--to {end} is before --from {start}")
        self.settings = settings
        self.start, self.end = start, end
        self.timeframe = FRAMES if frames is not None else timeframe
        self.data_dir = Path(data_dir or settings.data_dir)
        self.strategy = strategy or load_strategy(settings)
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
        self.store = BarStore(self.data_dir / "bars")
        self.last_price: dict[str, float] = {}  # instrument_key -> the last price seen (marks equity, close_prev)

    def _load(self) -> tuple[dict[str, InstrumentIndicators], DailyBars]:
        """Indicators as the live pre-open builds them from the daily bars before `start` (a symbol without
        history starts empty), and the daily bars of [start, end]."""
        config = required_indicator_config(self.settings, self.strategy)
        symbols = [i.symbol for i in self.instruments]
        keys = {i.symbol: i.instrument_key for i in self.instruments}
        warmed = build_metadata(self.store, symbols, asof=self.start - timedelta(days=1), config=config,
                                instrument_keys=keys, history_complete=self.history_complete).instruments
        indicators: dict[str, InstrumentIndicators] = {}
        bars = DailyBars()
        for symbol in symbols:
            indicators[symbol] = warmed.get(symbol) or InstrumentIndicators(symbol, config, keys[symbol],
                                                                            self.history_complete[symbol])
            if indicators[symbol].last_day is not None:  # the previous close: the first day's close_prev
                self.last_price[keys[symbol]] = indicators[symbol].snapshot().daily.close
            bars.read(self.store, symbol, self.start, self.end)
        return indicators, bars

    def _intraday_bars(self) -> dict[str, dict[date, list[Bar]]]:
        """Each instrument's 5-minute bars in [start, end], by day (Parquet reads release the GIL: on threads)."""
        def read(instrument: Instrument) -> pd.DataFrame:
            return self.store.read(instrument.symbol, Timeframe.MIN5, self.start, self.end + timedelta(days=1))

        result: dict[str, dict[date, list[Bar]]] = {}
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            for instrument, frame in zip(self.instruments, pool.map(read, self.instruments), strict=True):
                by_day: dict[date, list[Bar]] = {}
                for bar in _frame_bars(instrument.symbol, frame, Timeframe.MIN5):
                    by_day.setdefault(bar.day, []).append(bar)
                result[instrument.instrument_key] = by_day
        return result

    def _sessions(self) -> Callable[[date], SessionLike | None]:
        """The day's session from the NSE calendar (NSE's normal hours on a day it does not cover)."""
        try:
            calendar = load_calendar(self.settings.calendar_file)
        except (OSError, ValueError):
            return normal_session

        def session(day: date) -> SessionLike | None:
            try:
                return calendar.session(day) if calendar.covers(day) else normal_session(day)
            except ValueError:
                return normal_session(day)

        return session

    def _daily_steps(self, bars: DailyBars) -> Iterator[tuple[date, list[Step]]]:
        days = [day for day in bars.all_days() if day <= self.end]
        if not days:
            raise BacktestError(f"no daily bars between {self.start} and {self.end} for the chosen symbols")
        # every instrument trades at the same times: the steps are built directly, a step's ticks in
        # instrument-key order as `_steps_by_time` would sort them; the bars of a few weeks at a time, as a grid
        ordered = sorted(self.instruments, key=attrgetter("instrument_key"))
        keys, symbols = [i.instrument_key for i in ordered], [i.symbol for i in ordered]
        for first in range(0, len(days), _DAYS_AT_ONCE):
            chunk = days[first:first + _DAYS_AT_ONCE]
            for day, bars_of_day in zip(chunk, bars.grid(symbols, chunk), strict=True):
                yield day, self._daily_day_steps(day, keys, bars_of_day)

    def _daily_day_steps(self, day: date, keys: list[str], bars: np.ndarray) -> list[Step]:
        """The day's steps from the bars of `keys` (a row each, NaN without a bar): each bar's ticks, its previous
        close the last price seen."""
        present = np.flatnonzero(~np.isnan(bars[:, 0]))
        traded = [keys[index] for index in present.tolist()]
        bars = bars[present]
        previous = [self.last_price.get(key, open_) for key, open_ in zip(traded, bars[:, 0].tolist(), strict=True)]
        steps = []
        for at_ms, prices, share in zip(_daily_tick_times(day), _daily_path(bars), _VOLUME_SHARES, strict=True):
            volumes = (bars[:, 4] * share).astype(np.int64).tolist()  # int(volume * share), truncated
            steps.append(Step(_ms_time(at_ms), [Tick(key, price, at_ms, 0, volume, close)  # positional: cheaper
                                                for key, price, volume, close in zip(traded, prices.tolist(), volumes,
                                                                                     previous, strict=True)]))
        return steps

    def _intraday_steps(self, bars: DailyBars) -> Iterator[tuple[date, list[Step]]]:
        """The 5-minute days one at a time (a day's ticks are built just before it runs: memory stays one day's)."""
        intraday = self._intraday_bars()
        lacking = {i.symbol: [day for day in bars.days(i.symbol) if day not in intraday[i.instrument_key]]
                   for i in self.instruments}
        if any(lacking.values()):
            raise BacktestError(self._coverage_error({symbol: days for symbol, days in lacking.items() if days}))
        available = {day for by_day in intraday.values() for day in by_day}
        if not available:
            raise BacktestError(f"no 5-minute bars between {self.start} and {self.end} for the chosen symbols")
        for day in sorted(available):
            yield day, _steps_by_time(self._intraday_ticks(day, intraday))

    def _coverage_error(self, lacking: dict[str, list[date]]) -> str:
        """The days each symbol has daily but no 5-minute bars, and the span of every chosen symbol's 5-minute
        bars (they differ per symbol: the shipped data has a year for some symbols, a month for the rest)."""
        days = sorted({day for missing in lacking.values() for day in missing})
        spans: dict[str, list[str]] = {}
        for instrument in self.instruments:
            ts = self.store.read(instrument.symbol, Timeframe.MIN5)["ts"]
            span = f"{ts.iloc[0].date()} .. {ts.iloc[-1].date()}" if len(ts) else "no days"
            spans.setdefault(span, []).append(instrument.symbol)
        covered = "; ".join(f"{span} for {_listed(symbols, 20)}" for span, symbols in sorted(spans.items()))
        return (f"--timeframe 5min: no 5-minute bars on {_listed(days, 3)} for {_listed(sorted(lacking), 10)} "
                f"(the 5-minute bars cover {covered})")

    def _intraday_ticks(self, day: date, intraday: dict[str, dict[date, list[Bar]]]) -> Iterator[Tick]:
        for instrument in self.instruments:
            key = instrument.instrument_key
            bars = intraday[key].get(day)
            if bars:
                yield from day_ticks(key, bars, close_prev=self.last_price.get(key, bars[0].open),
                                     tick_size=instrument.tick_size)

    def _days(self, bars: DailyBars) -> Iterator[tuple[date, list[Step]]]:
        if self.frame_days is not None:
            days = [day for day in sorted(self.frame_days) if self.start <= day <= self.end]
            if not days:
                raise BacktestError(f"the frame file has no frames between {self.start} and {self.end}")
            for day in days:
                yield day, self.frame_days[day]
        elif self.timeframe == FIVE_MINUTES:
            yield from self._intraday_steps(bars)
        else:
            yield from self._daily_steps(bars)

    def _window_times(self, day: date, session: SessionLike | None) -> deque[datetime]:
        """When the entry window is executed: 15:10:30 on the daily path; at the windows' real times
        otherwise (each window's open, then every ENTRY_POLL while it is open, as the live session)."""
        if self.timeframe == DAILY:
            return deque([datetime.combine(day, _WINDOW_AT, tzinfo=IST)])
        times: deque[datetime] = deque()
        for opens, closes in EntryWindow(self.settings.entry_windows).intervals(day, session):
            moment = opens
            while moment < closes:
                times.append(moment)
                moment += ENTRY_POLL
        return times

    async def run(self) -> BacktestReport:
        with _rarer_collections():
            return await self._run()

    async def _run(self) -> BacktestReport:
        indicators, bars = self._load()
        check_venue_allowed(self.settings, replay=True)  # refuses a real broker's settings (VenueRefused)
        log.info("backtest %s .. %s (%s): paper broker (simulated)", self.start, self.end, self.timeframe)
        db = MemoryDatabase()
        clock = SteppedClock(datetime.combine(self.start, time(9, 0), tzinfo=IST))
        broker = PaperBroker.from_settings(self.settings, clock, instruments=self.instruments)
        report = BacktestReport(self.start, self.end, [i.symbol for i in self.instruments], self.settings.capital,
                                timeframe=self.timeframe)
        session_of = self._sessions()
        engine: TradingEngine | None = None
        # the daily path's intraday ticks are made up from the bar: setups are looked for at the window only
        refresh_ms = None if self.timeframe == DAILY else REFRESH_MS
        realised = 0.0  # the net P&L of the days so far
        for day, steps in self._days(bars):
            session = session_of(day)
            clock.set(datetime.combine(day, time(9, 0), tzinfo=IST))
            manager = OrderManager(broker, db, clock, trading_day=day)
            if engine is None:
                engine = TradingEngine(self.settings, clock, self.instruments, indicators, self.strategy, manager, db,
                                       day, broker, session=session, refresh_ms=refresh_ms)
                await engine.resume()
            else:  # one engine through the days: positions, indicators and what the exit sync saw carry over
                await engine.start_day(day, manager, session=session)
            windows = self._window_times(day, session)
            for step in steps:
                while windows and windows[0] <= step.at:
                    clock.set(windows.popleft())
                    await engine.execute_entry_window()
                clock.set(step.at)
                if step.status is not None:
                    await engine.on_market_status(step.status)
                if step.ticks:
                    await engine.on_ticks(step.ticks)
                    self.last_price.update({tick.instrument_key: tick.ltp for tick in step.ticks})
            for moment in windows:  # a frame file that ends before the window
                clock.set(moment)
                await engine.execute_entry_window()
            summary = await engine.end_of_day()
            report.days.append(summary)
            realised += summary.net_pnl
            equity = self.settings.capital + realised + sum(
                p.quantity * (self.last_price.get(key, p.average_price) - p.average_price)
                for key, p in engine.positions.open.items()
            )
            report.equity.append((day, equity))
            report.open_positions = summary.open_positions
        report.trades = [record.as_json() for record in position_store(db).trade_records()]
        return report


async def run_backtest(
    settings: Settings,
    start: date | None,
    end: date | None,
    symbols: list[str] | None = None,
    *,
    data_dir: Path | None = None,
    strategy: Strategy | None = None,
    timeframe: str = DAILY,
    frames: Path | None = None,
) -> BacktestReport:
    return await Backtest(settings, start, end, symbols, data_dir=data_dir, strategy=strategy, timeframe=timeframe,
                          frames=frames).run()


__all__ = ["DAILY", "DAILY_CLOSE_AT", "FIVE_MINUTES", "FRAMES", "TIMEFRAMES", "Backtest", "BacktestError",
           "BacktestReport", "bar_path", "run_backtest"]
