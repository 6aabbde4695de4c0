"""What strategies see of an instrument's indicators: one `TimeframeSnapshot` per timeframe,
current values including the forming bar. Value names match the `autotrader indicators` JSON:
"sma_9", "sma_200", "ema_20", "atr_14", "highest_high_20", "lowest_low_20", "avg_volume_20", and
"<name>_prev" for the value as of the previous closed bar (for slopes and crosses). A value is
None while there is not enough history.

Snapshots are lazy: a value is computed when it is read (`get`), one that depends on the forming bar
from the indicator's closed-bar state and the snapshot's forming bar, so a strategy or validator pays
only for the values its rules use. A kept snapshot stays exact after its instrument moves on: before
the indicators move, what it may still read is computed, or frozen into a formula (`ValueBasis`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from engine.models import IST, Timeframe

# a value computed from a snapshot's forming bar (its close, volume, high and low)
Formula = Callable[["TimeframeSnapshot"], float | None]


class ValueBasis:
    """What the snapshots of one timeframe share while its indicators stand still: the latest bar's
    start and each value by name, computed when read. `lookup` maps each name to (indicator, whether it
    is the `_prev` value, its value with a snapshot's forming bar, the formula of the indicator frozen);
    `names` orders them. A closed bars' value is kept in `committed` once read; a value that includes
    the forming bar is computed from the indicator as it stands on its first read (a backtest reads each
    once a day) and from then on by its formula (`formulas`: live, every tick reads it again). Its frame
    calls `freeze()` before the indicators move while a snapshot still holds it: every closed bars' value
    is kept and every forming value becomes a formula, so a kept snapshot stays exact."""

    __slots__ = ("__weakref__", "bar_start", "committed", "forming", "formulas", "lookup", "names", "read_once")

    def __init__(self, bar_start: datetime | None, forming: bool,
                 lookup: Mapping[str, tuple[Any, bool, Callable[[Any, TimeframeSnapshot], float | None], Any]],
                 names: tuple[str, ...]) -> None:
        self.bar_start = bar_start
        self.forming = forming
        self.lookup = lookup
        self.names = names
        self.committed: dict[str, float | None] = {}
        self.formulas: dict[str, Formula] = {}
        self.read_once: set[str] = set()  # forming values computed once, without a formula

    def read(self, name: str, snapshot: TimeframeSnapshot) -> float | None:
        """`name` for `snapshot`, which found it neither in `committed` nor in `formulas`."""
        entry = self.lookup.get(name)
        if entry is None:
            self.committed[name] = None
            return None
        indicator, is_prev, with_forming, formula_of = entry
        if self.forming and not is_prev:  # never frozen here: freezing made it a formula
            if name not in self.read_once:
                self.read_once.add(name)
                return with_forming(indicator, snapshot)
            formula = self.formulas[name] = formula_of(indicator.frozen())
            return formula(snapshot)
        value = self.committed[name] = self._closed(indicator, is_prev)
        return value

    def freeze(self) -> None:
        committed, formulas = self.committed, self.formulas
        for name in self.names:
            indicator, is_prev, _, formula_of = self.lookup[name]
            if self.forming and not is_prev:
                formulas[name] = formula_of(indicator.frozen())
            elif name not in committed:
                committed[name] = self._closed(indicator, is_prev)

    def _closed(self, indicator: Any, is_prev: bool) -> float | None:
        """A value of closed bars only (with a forming bar, `_prev` is as of the last closed bar)."""
        return indicator.value if self.forming or not is_prev else indicator.prev_value


_UNREAD = object()
_NO_BASIS = ValueBasis(None, False, {}, ())


class TimeframeSnapshot:
    """One timeframe's latest bar and values. Built with `values` (every value given), or lazily
    (`lazy`) on a `ValueBasis`: a value is computed when read, a value that includes the forming bar
    from this snapshot's forming bar."""

    __slots__ = ("_basis", "_committed", "_formulas", "_values", "bar_start", "bars", "close", "high", "low", "open",
                 "timeframe", "volume")

    def __init__(self, timeframe: Timeframe, bar_start: datetime | None, open: float, high: float, low: float,
                 close: float, volume: float, bars: int, values: dict[str, float | None] | None = None) -> None:
        self.timeframe = timeframe
        self.bar_start = bar_start  # start of the forming bar
        self.open, self.high, self.low, self.close, self.volume = open, high, low, close, volume
        self.bars = bars  # bars seen, the forming one included
        self._values: dict[str, float | None] | None = {} if values is None else values
        self._basis, self._committed, self._formulas = _NO_BASIS, _NO_BASIS.committed, _NO_BASIS.formulas

    @classmethod
    def lazy(cls, timeframe: Timeframe, open: float, high: float, low: float, close: float, volume: float, bars: int,
             basis: ValueBasis) -> TimeframeSnapshot:
        """A snapshot whose values come from `basis` (built per tick and timeframe read: no argument handling)."""
        snapshot = cls.__new__(cls)
        snapshot.timeframe, snapshot.bar_start, snapshot.bars = timeframe, basis.bar_start, bars
        snapshot.open, snapshot.high, snapshot.low, snapshot.close, snapshot.volume = open, high, low, close, volume
        snapshot._values, snapshot._basis = None, basis
        snapshot._committed, snapshot._formulas = basis.committed, basis.formulas
        return snapshot

    def get(self, name: str) -> float | None:
        if self._values is not None:
            return self._values.get(name)
        formula = self._formulas.get(name)
        if formula is not None:
            return formula(self)
        value = self._committed.get(name, _UNREAD)
        if value is _UNREAD:
            return self._basis.read(name, self)
        return value  # type: ignore[return-value]  # not _UNREAD

    @property
    def values(self) -> dict[str, float | None]:
        """Every value, by name (computed once, on first use)."""
        if self._values is None:
            self._values = {name: self.get(name) for name in self._basis.names}
        return self._values

    def _fields(self) -> tuple[Any, ...]:
        return (self.timeframe, self.bar_start, self.open, self.high, self.low, self.close, self.volume, self.bars,
                self.values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeframeSnapshot):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        return f"TimeframeSnapshot{self._fields()!r}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "bar_start": self.bar_start.isoformat() if self.bar_start else None,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            **self.values,
        }


class IndicatorSnapshot:
    """An instrument's three timeframes as of `asof`. Built with every timeframe given, or by
    `InstrumentIndicators.snapshot()` lazily: a timeframe (and `asof`) is built when first read, and
    the instrument calls `freeze()` before it moves on while the snapshot is still held."""

    __slots__ = ("__weakref__", "_asof", "_asof_ms", "_build", "_frames", "history_complete", "instrument_key",
                 "symbol")

    def __init__(self, instrument_key: str, symbol: str, asof: datetime, daily: TimeframeSnapshot,
                 weekly: TimeframeSnapshot, monthly: TimeframeSnapshot, history_complete: bool = True) -> None:
        self.instrument_key = instrument_key
        self.symbol = symbol
        self.history_complete = history_complete
        self._asof: datetime | None = asof
        self._asof_ms = 0
        self._frames: list[TimeframeSnapshot | None] = [daily, weekly, monthly]
        self._build: Callable[[int], TimeframeSnapshot] | None = None

    @classmethod
    def lazy(cls, instrument_key: str, symbol: str, asof_ms: int, build: Callable[[int], TimeframeSnapshot],
             history_complete: bool) -> IndicatorSnapshot:
        """A snapshot whose timeframe i (0 daily, 1 weekly, 2 monthly) is `build(i)`, called on first read."""
        snapshot = cls.__new__(cls)  # skips __init__: this runs once per tick of a trader
        snapshot.instrument_key, snapshot.symbol, snapshot.history_complete = instrument_key, symbol, history_complete
        snapshot._asof, snapshot._asof_ms = None, asof_ms
        snapshot._frames = [None, None, None]
        snapshot._build = build
        return snapshot

    def _built(self, index: int) -> TimeframeSnapshot:
        assert self._build is not None  # only a lazy snapshot has unbuilt timeframes
        frame = self._frames[index] = self._build(index)
        return frame

    def freeze(self) -> None:
        """Build every timeframe not read yet (its instrument is about to move on)."""
        if self._build is not None:
            for index, frame in enumerate(self._frames):
                if frame is None:
                    self._built(index)
            self._build = None

    @property
    def daily(self) -> TimeframeSnapshot:
        return self._frames[0] or self._built(0)

    @daily.setter
    def daily(self, frame: TimeframeSnapshot) -> None:
        self._frames[0] = frame

    @property
    def weekly(self) -> TimeframeSnapshot:
        return self._frames[1] or self._built(1)

    @weekly.setter
    def weekly(self, frame: TimeframeSnapshot) -> None:
        self._frames[1] = frame

    @property
    def monthly(self) -> TimeframeSnapshot:
        return self._frames[2] or self._built(2)

    @monthly.setter
    def monthly(self, frame: TimeframeSnapshot) -> None:
        self._frames[2] = frame

    @property
    def asof(self) -> datetime:
        if self._asof is None:
            self._asof = datetime.fromtimestamp(self._asof_ms / 1000, IST)
        return self._asof

    def timeframe(self, timeframe: Timeframe) -> TimeframeSnapshot:
        index = _FRAME_INDEX[timeframe]
        return self._frames[index] or self._built(index)

    def _fields(self) -> tuple[Any, ...]:
        return (self.instrument_key, self.symbol, self.asof, self.daily, self.weekly, self.monthly,
                self.history_complete)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IndicatorSnapshot):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        return f"IndicatorSnapshot{self._fields()!r}"

    def as_dict(self) -> dict[str, Any]:
        return {"daily": self.daily.as_dict(), "weekly": self.weekly.as_dict(), "monthly": self.monthly.as_dict()}


_FRAME_INDEX = {Timeframe.DAY: 0, Timeframe.WEEK: 1, Timeframe.MONTH: 2}
