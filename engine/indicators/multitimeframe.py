"""Daily, weekly and monthly indicators of one instrument, live.

`InstrumentIndicators` keeps, per timeframe, the indicators over CLOSED bars plus the FORMING bar
(today's daily bar; this week's and this month's bars = their closed days + today). The hot path is
`update_tick(price, cumulative_volume, ts_ms)`: it validates the tick and updates the three forming
bars (a handful of attribute writes, no allocation). `snapshot()` is lazy: a timeframe captures its
forming bar when first read, and each indicator value is computed in O(1) when it is read, from the
closed bars' state and the snapshot's forming bar (`engine.indicators.snapshot`).

Time model: a trading day is an IST calendar day (`epoch_day(ts_ms)`); a week is the Monday–Sunday
calendar week, a month the calendar month (see `engine.indicators.aggregate`). A tick of a later
day closes the current day first. The weekly/monthly bar closes when a day of a later week/month
begins, or eagerly in `close_day(next_session=...)` when the caller knows the next session date.

Snapshot semantics: for each timeframe the "latest bar" is the forming bar if there is one, else the
last closed bar. `<name>` is the indicator including the latest bar, `<name>_prev` the indicator as of
the bar before it (with a forming bar: the last closed bar). None while history is too short.
"""

from __future__ import annotations

import math
import weakref
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from engine.indicators.rolling import ATR, EMA, SMA, AverageVolume, Highest, Lowest, WithInput, WithRange
from engine.indicators.snapshot import Formula, IndicatorSnapshot, TimeframeSnapshot, ValueBasis
from engine.models import IST, Bar, Tick, Timeframe

DAY_MS = 86_400_000
IST_OFFSET_MS = 19_800_000  # +05:30, no DST
_INF = math.inf
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
TIMEFRAMES = (Timeframe.DAY, Timeframe.WEEK, Timeframe.MONTH)


def epoch_day(ts_ms: int) -> int:
    """IST calendar day of an epoch-millisecond time, as days since 1970-01-01."""
    return (ts_ms + IST_OFFSET_MS) // DAY_MS


def day_number(day: date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


def day_from_number(number: int) -> date:
    return date.fromordinal(number + _EPOCH_ORDINAL)


def week_key(day: int) -> int:
    """Monday-based calendar week of an epoch day (1970-01-01 was a Thursday)."""
    return (day + 3) // 7


@lru_cache(maxsize=8192)  # read at every day's start: a backtest reads the same days for every symbol
def month_key(day: int) -> int:
    """Calendar month of an epoch day, as months since 1970-01 (numpy's datetime64[M])."""
    d = day_from_number(day)
    return (d.year - 1970) * 12 + d.month - 1


@lru_cache(maxsize=4096)
def day_start(day: int) -> datetime:
    return datetime.combine(day_from_number(day), datetime.min.time(), IST)


@dataclass(frozen=True, slots=True)
class IndicatorConfig:
    """Periods of the indicators computed on every timeframe."""

    sma_periods: tuple[int, ...] = (9, 200)
    ema_periods: tuple[int, ...] = (20,)
    atr_periods: tuple[int, ...] = (14,)
    extreme_periods: tuple[int, ...] = (20,)  # highest_high_<n>, lowest_low_<n>
    avg_volume_periods: tuple[int, ...] = (20,)

    def __post_init__(self) -> None:
        for name in ("sma_periods", "ema_periods", "atr_periods", "extreme_periods", "avg_volume_periods"):
            periods = tuple(getattr(self, name))
            if any(not isinstance(p, int) or p < 1 for p in periods) or len(set(periods)) != len(periods):
                raise ValueError(f"{name} must be distinct positive ints, got {periods!r}")
            object.__setattr__(self, name, periods)

    @property
    def history_lengths(self) -> tuple[int, int, int, int, int, int]:
        """Closed bars kept per column (start day, open, high, low, close, volume): enough to rebuild
        every window and its `_prev` value (the window + 1); start day and open: the last bar only."""
        extreme = max(self.extreme_periods, default=1) + 1
        return (
            1,
            1,
            extreme,
            extreme,
            max(self.sma_periods, default=1) + 1,
            max(self.avg_volume_periods, default=1) + 1,
        )

    def value_names(self) -> list[str]:
        """Indicator names, in snapshot order (each also has a `<name>_prev`)."""
        return (
            [f"sma_{n}" for n in self.sma_periods]
            + [f"ema_{n}" for n in self.ema_periods]
            + [f"atr_{n}" for n in self.atr_periods]
            + [f"highest_high_{n}" for n in self.extreme_periods]
            + [f"lowest_low_{n}" for n in self.extreme_periods]
            + [f"avg_volume_{n}" for n in self.avg_volume_periods]
        )

    def to_dict(self) -> dict[str, list[int]]:
        return {
            "sma_periods": list(self.sma_periods),
            "ema_periods": list(self.ema_periods),
            "atr_periods": list(self.atr_periods),
            "extreme_periods": list(self.extreme_periods),
            "avg_volume_periods": list(self.avg_volume_periods),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndicatorConfig:
        return cls(**{k: tuple(int(p) for p in v) for k, v in data.items()})


@dataclass(slots=True)
class FrameState:
    """Closed-bar state of one timeframe: enough to continue incrementally (metadata format).

    `hist_*`: the last closed bars, oldest first, as many per column as `config.history_lengths`
    says (`hist_start` = epoch day of each bar's first trading day). `ema`/`atr`: (value,
    prev_value, count, seed) per period, NaN for None. `partial`: this week's/month's closed days
    not yet closed as a bar: (start_day, key, open, high, low, close, volume, days), or None."""

    closed_count: int = 0
    hist_start: list[int] = field(default_factory=list)
    hist_open: list[float] = field(default_factory=list)
    hist_high: list[float] = field(default_factory=list)
    hist_low: list[float] = field(default_factory=list)
    hist_close: list[float] = field(default_factory=list)
    hist_volume: list[float] = field(default_factory=list)
    ema: list[tuple[float, float, int, float]] = field(default_factory=list)
    atr: list[tuple[float, float, int, float]] = field(default_factory=list)
    partial: tuple[int, int, float, float, float, float, float, int] | None = None


def _none_if_nan(x: float) -> float | None:
    return None if x != x else x


def _nan_if_none(x: float | None) -> float:
    return math.nan if x is None else x


def _of_close(value_with: WithInput) -> Formula:
    return lambda snapshot: value_with(snapshot.close)


def _of_volume(value_with: WithInput) -> Formula:
    return lambda snapshot: value_with(snapshot.volume)


def _of_high(value_with: WithInput) -> Formula:
    return lambda snapshot: value_with(snapshot.high)


def _of_low(value_with: WithInput) -> Formula:
    return lambda snapshot: value_with(snapshot.low)


def _of_range(value_with: WithRange) -> Formula:
    return lambda snapshot: value_with(snapshot.high, snapshot.low)


def _with_close(indicator: Any, snapshot: TimeframeSnapshot) -> float | None:
    return indicator.value_with(snapshot.close)


def _with_volume(indicator: Any, snapshot: TimeframeSnapshot) -> float | None:
    return indicator.value_with(snapshot.volume)


def _with_high(indicator: Any, snapshot: TimeframeSnapshot) -> float | None:
    return indicator.value_with(snapshot.high)


def _with_low(indicator: Any, snapshot: TimeframeSnapshot) -> float | None:
    return indicator.value_with(snapshot.low)


def _with_range(indicator: Any, snapshot: TimeframeSnapshot) -> float | None:
    return indicator.value_with(snapshot.high, snapshot.low)


def _named(prefix: str, indicators: Sequence[Any]) -> list[tuple[str, str, Any]]:
    return [(f"{prefix}_{i.period}", f"{prefix}_{i.period}_prev", i) for i in indicators]


class _Frame:
    """One timeframe: indicators over closed bars, the forming bar, and (weekly/monthly) the
    aggregate of the period's closed days (`base_*`) that today's forming day is added to."""

    __slots__ = (
        "_basis",
        "_held",
        "_lookup",
        "_names",
        "_push_close",
        "_push_high",
        "_push_low",
        "_push_range",
        "_push_volume",
        "atrs",
        "avg_volumes",
        "base_close",
        "base_days",
        "base_high",
        "base_low",
        "base_open",
        "base_volume",
        "close",
        "closed_count",
        "days",
        "emas",
        "forming",
        "high",
        "highs",
        "hist",
        "key",
        "low",
        "lows",
        "open",
        "smas",
        "start",
        "timeframe",
        "volume",
    )

    def __init__(self, timeframe: Timeframe, config: IndicatorConfig) -> None:
        self.timeframe = timeframe
        self.smas = [SMA(n) for n in config.sma_periods]
        self.emas = [EMA(n) for n in config.ema_periods]
        self.atrs = [ATR(n) for n in config.atr_periods]
        self.highs = [Highest(n) for n in config.extreme_periods]
        self.lows = [Lowest(n) for n in config.extreme_periods]
        self.avg_volumes = [AverageVolume(n) for n in config.avg_volume_periods]
        # (name, name_prev, indicator) grouped by the forming bar's input
        on_close = _named("sma", self.smas) + _named("ema", self.emas)
        on_range = _named("atr", self.atrs)
        on_high = _named("highest_high", self.highs)
        on_low = _named("lowest_low", self.lows)
        on_volume = _named("avg_volume", self.avg_volumes)
        # each value's name (in snapshot order) -> (indicator, is the `_prev` value, its value with a snapshot's
        # forming bar, the formula of the indicator frozen)
        self._lookup: dict[str, tuple[Any, bool, Callable[[Any, TimeframeSnapshot], float | None],
                                      Callable[[Any], Formula]]] = {}
        for group, with_forming, of in ((on_close, _with_close, _of_close), (on_range, _with_range, _of_range),
                                        (on_high, _with_high, _of_high), (on_low, _with_low, _of_low),
                                        (on_volume, _with_volume, _of_volume)):
            for name, prev_name, indicator in group:
                self._lookup[name] = (indicator, False, with_forming, of)
                self._lookup[prev_name] = (indicator, True, with_forming, of)
        self._names = tuple(self._lookup)
        # the indicators' `push`, bound once and grouped by input, for `close_bar`
        self._push_close = [indicator.push for *_, indicator in on_close]
        self._push_range = [atr.push for atr in self.atrs]
        self._push_high = [highest.push for highest in self.highs]
        self._push_low = [lowest.push for lowest in self.lows]
        self._push_volume = [avg.push for avg in self.avg_volumes]
        # the snapshots' `ValueBasis`, None once a bar closes or the forming bar starts (a new one is made when read)
        self._basis: ValueBasis | None = None
        self._held: list[weakref.ref[ValueBasis]] = []  # the bases made since the indicators last moved
        # closed bars, one deque per column: start day, open, high, low, close, volume
        self.hist: tuple[deque[float], ...] = tuple(deque(maxlen=n) for n in config.history_lengths)
        self.closed_count = 0
        self.forming = False
        self.start = 0
        self.key = -1
        self.open = self.high = self.low = self.close = self.volume = math.nan
        self.days = 0
        self._clear_base()

    def _clear_base(self) -> None:
        self.base_open = math.nan
        self.base_close = math.nan
        self.base_high = -_INF
        self.base_low = _INF
        self.base_volume = 0.0
        self.base_days = 0

    def begin_period(self, day: int, key: int) -> None:
        self.start = day
        self.key = key
        self._clear_base()

    def open_day(self, price: float) -> None:
        """First trade of a day: the forming bar becomes the period's closed days + this price."""
        self._start_forming()
        self.open = self.base_open if self.base_days else price
        self.high = max(self.base_high, price)
        self.low = min(self.base_low, price)
        self.close = price
        self.volume = self.base_volume
        self.days = self.base_days + 1

    def set_day_bar(self, o: float, h: float, lo: float, c: float, v: float) -> None:
        """Today's whole daily bar (a backfilled bar, or the official bar replacing ticks)."""
        self._start_forming()
        self.open = self.base_open if self.base_days else o
        self.high = max(self.base_high, h)
        self.low = min(self.base_low, lo)
        self.close = c
        self.volume = self.base_volume + v
        self.days = self.base_days + 1

    def _start_forming(self) -> None:
        if not self.forming:  # a weekly/monthly bar keeps forming over its days
            self.forming = True
            self._basis = None

    def fold_day(self) -> None:
        """Today closed: it becomes part of the period's closed days (the bar stays forming)."""
        self.base_open = self.open
        self.base_close = self.close
        self.base_high = self.high
        self.base_low = self.low
        self.base_volume = self.volume
        self.base_days = self.days

    def close_bar(self) -> None:
        """The forming bar closes: push it into every indicator."""
        if not self.forming:
            return
        self._freeze_bases()
        h, lo, c, v = self.high, self.low, self.close, self.volume
        for push in self._push_close:
            push(c)
        for push_range in self._push_range:
            push_range(h, lo, c)
        for push in self._push_high:
            push(h)
        for push in self._push_low:
            push(lo)
        for push in self._push_volume:
            push(v)
        starts, opens, highs, lows, closes, volumes = self.hist
        starts.append(self.start)
        opens.append(self.open)
        highs.append(h)
        lows.append(lo)
        closes.append(c)
        volumes.append(v)
        self.closed_count += 1
        self.forming = False
        self._clear_base()

    def _freeze_bases(self) -> None:
        """The indicators are about to move: a basis a snapshot still holds computes its values first."""
        self._basis = None
        for held in self._held:
            basis = held()
            if basis is not None:
                basis.freeze()
        self._held.clear()

    def _new_basis(self) -> ValueBasis:
        """The basis of the snapshots until a bar closes or the forming bar starts."""
        if self.forming:
            start: int | None = self.start
        else:
            start = int(self.hist[0][-1]) if self.hist[0] else None
        basis = self._basis = ValueBasis(day_start(start) if start is not None else None, self.forming, self._lookup,
                                         self._names)
        self._held.append(weakref.ref(basis))
        return basis

    def values(self) -> dict[str, float | None]:
        """Indicator values including the latest bar, and `_prev` values (see module docstring)."""
        return self.snapshot().values

    def snapshot(self) -> TimeframeSnapshot:
        """The latest bar, with its values computed lazily (see `engine.indicators.snapshot`)."""
        basis = self._basis or self._new_basis()
        if self.forming:
            return TimeframeSnapshot.lazy(self.timeframe, self.open, self.high, self.low, self.close, self.volume,
                                          self.closed_count + 1, basis)
        hist = self.hist
        if hist[0]:
            return TimeframeSnapshot.lazy(self.timeframe, hist[1][-1], hist[2][-1], hist[3][-1], hist[4][-1],
                                          hist[5][-1], self.closed_count, basis)
        return TimeframeSnapshot.lazy(self.timeframe, math.nan, math.nan, math.nan, math.nan, 0.0, 0, basis)

    # ---- metadata state -------------------------------------------------------------------
    def export_state(self) -> FrameState:
        """Closed-bar state; a forming weekly/monthly bar is exported as its closed days only."""
        start, opens, highs, lows, closes, volumes = (list(column) for column in self.hist)
        partial = None
        if self.base_days:
            partial = (
                self.start,
                self.key,
                self.base_open,
                self.base_high,
                self.base_low,
                self.base_close,
                self.base_volume,
                self.base_days,
            )
        return FrameState(
            closed_count=self.closed_count,
            hist_start=[int(day) for day in start],
            hist_open=opens,
            hist_high=highs,
            hist_low=lows,
            hist_close=closes,
            hist_volume=volumes,
            ema=[(_nan_if_none(e.value), _nan_if_none(e.prev_value), e.count, e.state()[3]) for e in self.emas],
            atr=[(_nan_if_none(a.value), _nan_if_none(a.prev_value), a.count, a.state()[3]) for a in self.atrs],
            partial=partial,
        )

    def restore_state(self, state: FrameState) -> None:
        self._freeze_bases()
        count = state.closed_count
        self.closed_count = count
        columns: tuple[Sequence[float], ...] = (
            state.hist_start,
            state.hist_open,
            state.hist_high,
            state.hist_low,
            state.hist_close,
            state.hist_volume,
        )
        for column, values in zip(self.hist, columns, strict=True):
            column.clear()
            column.extend(values)
        for sma in self.smas:
            sma.restore(state.hist_close, count)
        for avg in self.avg_volumes:
            avg.restore(state.hist_volume, count)
        for highest in self.highs:
            highest.restore(state.hist_high, count)
        for lowest in self.lows:
            lowest.restore(state.hist_low, count)
        for ema, (value, prev, ema_count, seed) in zip(self.emas, state.ema, strict=True):
            ema.restore(_none_if_nan(value), _none_if_nan(prev), int(ema_count), seed)
        last_close = state.hist_close[-1] if state.hist_close else None
        for atr, (value, prev, atr_count, seed) in zip(self.atrs, state.atr, strict=True):
            atr.restore(_none_if_nan(value), _none_if_nan(prev), int(atr_count), seed, last_close)
        self.forming = False
        self._clear_base()
        if state.partial is not None:
            start, key, o, h, lo, c, v, days = state.partial
            self.start, self.key = int(start), int(key)
            self.base_open, self.base_high, self.base_low, self.base_close = o, h, lo, c
            self.base_volume, self.base_days = v, int(days)
            self.forming = True
            self.open, self.high, self.low, self.close, self.volume, self.days = o, h, lo, c, v, int(days)


class InstrumentIndicators:
    """Daily/weekly/monthly indicators of one instrument, fed by ticks and/or daily bars.

    - `update_tick(price, cumulative_volume, ts_ms)`: one trade; `cumulative_volume` is the day's
      cumulative traded volume (`Tick.volume`), `ts_ms` epoch milliseconds (`Tick.ltt_ms`).
      Returns False (and counts the reason in `rejections`) for bad input, which is never folded in:
      "bad_price" (NaN, inf, <= 0), "out_of_order" (time before the last accepted tick),
      "day_closed" (a tick of a day already closed), "bad_volume" (NaN), "volume_decreased"
      (cumulative volume going down).
    - `on_bar(bar)`: a whole closed daily bar (history, backfill, or the official end-of-day bar,
      which replaces the same day's tick-built bar). Rejections: "bad_bar", "out_of_order",
      "duplicate_day", "not_daily".
    - `close_day(next_session=None)`: the day closed; weekly/monthly bars close when a later
      week/month starts, or now if `next_session` is in a later week/month.
    - `snapshot()`: `IndicatorSnapshot` with current values (the same one until the next update,
      while it is held; its timeframes are built when first read).
    """

    def __init__(
        self,
        symbol: str,
        config: IndicatorConfig | None = None,
        instrument_key: str = "",
        history_complete: bool = True,
    ) -> None:
        self.symbol = symbol
        self.instrument_key = instrument_key
        self.config = config or IndicatorConfig()
        self.history_complete = history_complete
        self.rejections: Counter[str] = Counter()
        self._init_state()

    def _init_state(self) -> None:
        self._daily = _Frame(Timeframe.DAY, self.config)
        self._weekly = _Frame(Timeframe.WEEK, self.config)
        self._monthly = _Frame(Timeframe.MONTH, self.config)
        self._frames = (self._daily, self._weekly, self._monthly)
        self._day = -1  # epoch day of the current (forming or last closed) day; -1: none yet
        self._day_end_ms = -(2**62)  # first ms after the current day
        self._last_ts = -(2**62)  # time of the last accepted tick (day end once the day closed)
        self._day_closed_ms = -(2**62)  # ticks before this belong to closed days
        self._day_volume = 0.0
        self._need_open = False
        self._asof_ms = 0  # time of the latest update (a tick's time, or the end of a closed day)
        # the latest snapshot while it is held and the state has not moved since (see `_moving`)
        self._snapshot: weakref.ref[IndicatorSnapshot] | None = None
        self._higher_stale = False  # ticks reached the daily frame only: see `_sync_higher`

    # ---- hot path -------------------------------------------------------------------------
    def update_tick(self, price: float, cumulative_volume: float, ts_ms: int) -> bool:
        if not 0.0 < price < _INF:
            self.rejections["bad_price"] += 1
            return False
        if ts_ms < self._last_ts:
            self.rejections["day_closed" if ts_ms < self._day_closed_ms else "out_of_order"] += 1
            return False
        if ts_ms >= self._day_end_ms:  # first tick of a later day (checked before it rolls the day)
            if not cumulative_volume >= 0.0:
                return self._reject_volume(cumulative_volume)
            self._begin_day(epoch_day(ts_ms))
        elif not cumulative_volume >= self._day_volume:
            return self._reject_volume(cumulative_volume)
        if self._snapshot is not None:
            self._moving()
        if self._need_open:
            self._open_day(price)
        self._last_ts = self._asof_ms = ts_ms
        self._day_volume = cumulative_volume
        self._higher_stale = True
        frame = self._daily
        frame.close = price
        if price > frame.high:
            frame.high = price
        elif price < frame.low:
            frame.low = price
        frame.volume = cumulative_volume
        return True

    def _sync_higher(self) -> None:
        """Bring the weekly and monthly frames up to the daily one before they are read: ticks only
        update the daily frame (the hot path), and today's high, low, close and volume are all the
        weekly and monthly bars take from them."""
        if not self._higher_stale:
            return
        self._higher_stale = False
        daily = self._daily
        for frame in (self._weekly, self._monthly):
            frame.close = daily.close
            if daily.high > frame.high:
                frame.high = daily.high
            if daily.low < frame.low:
                frame.low = daily.low
            frame.volume = frame.base_volume + daily.volume

    def _reject_volume(self, volume: float) -> bool:
        self.rejections["bad_volume" if volume != volume else "volume_decreased"] += 1
        return False

    def on_tick(self, tick: Tick) -> bool:
        return self.update_tick(tick.ltp, tick.volume, tick.ltt_ms)

    # ---- day/period boundaries ------------------------------------------------------------
    def _moving(self) -> None:
        """The state is about to change: the latest snapshot, if still held, builds the timeframes it
        has not read yet first (it stays exact), and is no longer the current one."""
        held = self._snapshot() if self._snapshot is not None else None
        self._snapshot = None
        if held is not None:
            held.freeze()

    def _begin_day(self, day: int) -> None:
        if self._snapshot is not None:
            self._moving()
        self._sync_higher()
        if self._daily.forming or self._need_open:
            self.close_day()
        weekly, monthly = self._weekly, self._monthly
        week = week_key(day)
        if weekly.key != week:
            weekly.close_bar()
            weekly.begin_period(day, week)
        month = month_key(day)
        if monthly.key != month:
            monthly.close_bar()
            monthly.begin_period(day, month)
        self._daily.begin_period(day, day)
        self._day = day
        self._day_end_ms = (day + 1) * DAY_MS - IST_OFFSET_MS
        self._day_volume = 0.0
        self._need_open = True

    def _open_day(self, price: float) -> None:
        self._need_open = False
        for frame in self._frames:
            frame.open_day(price)

    def close_day(self, next_session: date | None = None) -> None:
        """Close today's daily bar (if any trade formed it) into history."""
        if self._snapshot is not None:
            self._moving()
        self._sync_higher()
        self._need_open = False
        if self._daily.forming:
            self._daily.close_bar()
            self._weekly.fold_day()
            self._monthly.fold_day()
        if self._day >= 0:
            self._day_closed_ms = self._day_end_ms
            self._last_ts = max(self._last_ts, self._day_end_ms)
            self._asof_ms = self._day_end_ms - 1
        if next_session is not None:
            nxt = day_number(next_session)
            if week_key(nxt) != self._weekly.key:
                self._weekly.close_bar()
            if month_key(nxt) != self._monthly.key:
                self._monthly.close_bar()

    def on_bar(self, bar: Bar) -> bool:
        if bar.timeframe is not Timeframe.DAY:
            self.rejections["not_daily"] += 1
            return False
        return self.add_daily_bar(day_number(bar.day), bar.open, bar.high, bar.low, bar.close, bar.volume)

    def add_daily_bar(self, day: int, o: float, h: float, lo: float, c: float, v: float) -> bool:
        """`on_bar` with plain values (`day` = epoch day, see `day_number`)."""
        if not (
            0.0 < lo <= o <= h < _INF and lo <= c <= h and v >= 0  # NaN fails every comparison
        ):
            self.rejections["bad_bar"] += 1
            return False
        if day < self._day:
            self.rejections["out_of_order"] += 1
            return False
        if day == self._day and not (self._daily.forming or self._need_open):
            self.rejections["duplicate_day"] += 1
            return False
        if self._snapshot is not None:
            self._moving()
        if day != self._day:
            self._begin_day(day)
        self._need_open = False
        for frame in self._frames:
            frame.set_day_bar(o, h, lo, c, v)
        self.close_day()
        return True

    # ---- reading --------------------------------------------------------------------------
    def frame_values(self, timeframe: Timeframe) -> dict[str, float | None]:
        return self._frame(timeframe).values()

    def _frame(self, timeframe: Timeframe) -> _Frame:
        self._sync_higher()
        return {Timeframe.DAY: self._daily, Timeframe.WEEK: self._weekly, Timeframe.MONTH: self._monthly}[timeframe]

    @property
    def last_day(self) -> date | None:
        """The current day (forming, or the last closed one)."""
        return day_from_number(self._day) if self._day >= 0 else None

    @property
    def initialized(self) -> bool:
        """Every DAILY indicator has enough history (see `timeframe_initialized` for the others)."""
        return self.timeframe_initialized(Timeframe.DAY)

    def timeframe_initialized(self, timeframe: Timeframe) -> bool:
        return all(v is not None for v in self._frame(timeframe).values().values())

    def snapshot(self) -> IndicatorSnapshot:
        """The current values; each timeframe is built when first read (a rule that fails on the
        monthly timeframe pays for no weekly one). The same snapshot until the state moves."""
        held = self._snapshot() if self._snapshot is not None else None
        if held is not None:
            return held
        snapshot = IndicatorSnapshot.lazy(self.instrument_key, self.symbol, self._asof_ms, self._timeframe_snapshot,
                                          self.history_complete)
        self._snapshot = weakref.ref(snapshot)
        return snapshot

    def _timeframe_snapshot(self, index: int) -> TimeframeSnapshot:
        if index and self._higher_stale:
            self._sync_higher()
        return self._frames[index].snapshot()

    def reset(self) -> None:
        """Forget all history and rejections."""
        self._moving()
        self.rejections.clear()
        self._init_state()

    # ---- metadata state -------------------------------------------------------------------
    def export_state(self) -> tuple[int, list[FrameState]]:
        """(last closed day as epoch day or -1, [daily, weekly, monthly] states). Call after
        `close_day()`: a forming daily bar is not exported."""
        self._sync_higher()
        last = int(self._daily.hist[0][-1]) if self._daily.hist[0] else -1
        return last, [self._daily.export_state(), self._weekly.export_state(), self._monthly.export_state()]

    @classmethod
    def from_state(
        cls,
        symbol: str,
        config: IndicatorConfig,
        last_day: int,
        frames: list[FrameState],
        instrument_key: str = "",
        history_complete: bool = True,
    ) -> InstrumentIndicators:
        self = cls(symbol, config, instrument_key, history_complete)
        self._daily.restore_state(frames[0])
        self._weekly.restore_state(frames[1])
        self._monthly.restore_state(frames[2])
        if frames[0].hist_start:
            self._daily.start = self._daily.key = frames[0].hist_start[-1]
        if last_day >= 0:
            self._day = last_day
            self._day_end_ms = (last_day + 1) * DAY_MS - IST_OFFSET_MS
            self._last_ts = self._day_closed_ms = self._day_end_ms
            self._asof_ms = self._day_end_ms - 1
        return self
