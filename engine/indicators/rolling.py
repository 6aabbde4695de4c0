"""Incremental indicators over closed bars, each able to include one forming (not yet closed) bar.

Every indicator keeps COMMITTED state built from closed bars only (`push`) and answers:
- `value`: the value as of the last closed bar (None until `initialized`);
- `prev_value`: the value as of the closed bar before that;
- `value_with(x)`: the value if a forming bar with input `x` closed now, in O(1), without touching
  the committed state (so a tick costs nothing here; the forming bar is just an argument);
- `frozen()`: `value_with` bound to the committed state as it is now: a later `push` does not change
  what it returns (a snapshot kept while its instrument moves on keeps it).

`update(bar)` is the STYLE entry point (a closed `Bar`); `push(...)` takes plain floats (hot path,
metadata restore). Updates are O(1): deques and running sums (a rolling extreme scans its window, in C, on
its first read after an update). Window sums use Neumaier compensated
summation and are recomputed exactly (`math.fsum`) every `EXACT_RECOMPUTE_EVERY` pushes, so years
of history and millions of updates do not drift.

Conventions (checked against pandas in tests/engine/indicators):
- SMA(n): mean of the last n inputs (pandas `rolling(n).mean()`).
- EMA(n): alpha = 2/(n+1), seeded with the SMA of the first n inputs, then
  `ema += alpha * (x - ema)` (pandas `ewm(span=n, adjust=False)` over the seeded series; TA-Lib style).
- ATR(n): Wilder. True range TR = max(high-low, |high-prev_close|, |low-prev_close|) (first bar:
  high-low); seeded with the mean of the first n TRs, then `atr += (tr - atr) / n`.
- Highest(n)/Lowest(n): max of highs / min of lows over the last n bars.
- AverageVolume(n): SMA of volume.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence

from engine.models import Bar

EXACT_RECOMPUTE_EVERY = 4096

WithInput = Callable[[float], float | None]  # the value with a forming bar's input
WithRange = Callable[[float, float], float | None]  # the value with a forming bar's high and low


_UNREAD = object()  # a value not computed since the last push


def _not_yet(*_: float) -> None:
    """The value with a forming bar while history is too short."""
    return None


def _true_range(high: float, low: float, prev_close: float | None) -> float:
    if prev_close is None:
        return high - low
    return max(high - low, abs(high - prev_close), abs(low - prev_close))


def _check_period(period: int) -> int:
    if not isinstance(period, int) or period < 1:
        raise ValueError(f"period must be a positive int, got {period!r}")
    return period


class _Indicator:
    """What every indicator shares: `period`, and the count of inputs pushed."""

    __slots__ = ()
    period: int
    _count: int

    @property
    def count(self) -> int:
        return self._count

    @property
    def initialized(self) -> bool:
        return self._count >= self.period


class SMA(_Indicator):
    """Simple moving average of the last `period` inputs (closes by default)."""

    __slots__ = ("_comp", "_count", "_head", "_pushes", "_values", "period", "prev_value")

    def __init__(self, period: int) -> None:
        self.period = _check_period(period)
        self.reset()

    def reset(self) -> None:
        # _values: the last `period` inputs; _head (+_comp): compensated sum of the newest period-1.
        self._values: deque[float] = deque(maxlen=self.period)
        self._head = 0.0
        self._comp = 0.0
        self._count = 0
        self._pushes = 0
        self.prev_value: float | None = None

    def push(self, x: float) -> None:
        values, period = self._values, self.period
        count = self._count
        head, comp = self._head, self._comp
        self.prev_value = (head + comp + values[0]) / period if count >= period else None  # `value`
        keep = period - 1
        if keep:
            # Neumaier's compensated sum, inlined (every instrument's bar close runs this): the input leaving the
            # newest-(period-1) window is taken out, then `x` is added
            if len(values) >= keep:
                leaving = -values[-keep]
                total = head + leaving
                comp += (head - total) + leaving if abs(head) >= abs(leaving) else (leaving - total) + head
                head = total
            values.append(x)
            total = head + x
            comp += (head - total) + x if abs(head) >= abs(x) else (x - total) + head
            self._head, self._comp = total, comp
        else:
            values.append(x)
        self._count = count + 1
        self._pushes += 1
        if self._pushes >= EXACT_RECOMPUTE_EVERY:
            self._recompute()

    def _recompute(self) -> None:
        keep = self.period - 1
        tail = list(self._values)[-keep:] if keep else []
        self._head = math.fsum(tail)
        self._comp = 0.0
        self._pushes = 0

    def update(self, bar: Bar) -> None:
        self.push(bar.close)

    @property
    def value(self) -> float | None:
        if self._count < self.period:
            return None
        return (self._head + self._comp + self._values[0]) / self.period

    def value_with(self, x: float) -> float | None:
        """The value including a forming input `x` (needs period-1 closed inputs); what `frozen()` computes."""
        if self._count < self.period - 1:
            return None
        return (self._head + self._comp + x) / self.period

    def frozen(self) -> WithInput:
        if self._count < self.period - 1:
            return _not_yet
        total, period = self._head + self._comp, self.period
        return lambda x: (total + x) / period

    def restore(self, tail: Sequence[float], count: int) -> None:
        """Rebuild from the last closed inputs (`tail`, oldest first, at least min(count, period+1)
        of them) and the number of inputs ever pushed."""
        self.reset()
        n = self.period
        self._values.extend(tail[-n:])
        self._recompute()
        self._count = count
        if count > n and len(tail) > n:
            self.prev_value = math.fsum(tail[-n - 1 : -1]) / n


class AverageVolume(SMA):
    """SMA of bar volume."""

    __slots__ = ()

    def update(self, bar: Bar) -> None:
        self.push(float(bar.volume))


class EMA(_Indicator):
    """Exponential moving average, SMA-seeded (see module docstring)."""

    __slots__ = ("_count", "_seed", "alpha", "period", "prev_value", "value")

    def __init__(self, period: int) -> None:
        self.period = _check_period(period)
        self.alpha = 2.0 / (period + 1)
        self.reset()

    def reset(self) -> None:
        self.value: float | None = None
        self.prev_value: float | None = None
        self._seed = 0.0  # sum of inputs while warming up
        self._count = 0

    @property
    def initialized(self) -> bool:
        return self.value is not None

    def push(self, x: float) -> None:
        self.prev_value = self.value
        self._count += 1
        if self.value is not None:
            self.value += self.alpha * (x - self.value)
        else:
            self._seed += x
            if self._count == self.period:
                self.value = self._seed / self.period

    def update(self, bar: Bar) -> None:
        self.push(bar.close)

    def value_with(self, x: float) -> float | None:
        value = self.value
        if value is not None:
            return value + self.alpha * (x - value)
        if self._count == self.period - 1:
            return (self._seed + x) / self.period
        return None

    def frozen(self) -> WithInput:
        value, alpha, seed, period = self.value, self.alpha, self._seed, self.period
        if value is not None:
            return lambda x: value + alpha * (x - value)
        if self._count == period - 1:
            return lambda x: (seed + x) / period
        return _not_yet

    def state(self) -> tuple[float | None, float | None, int, float]:
        return self.value, self.prev_value, self._count, self._seed

    def restore(self, value: float | None, prev_value: float | None, count: int, seed: float) -> None:
        self.value, self.prev_value, self._count, self._seed = value, prev_value, count, seed


class ATR(_Indicator):
    """Average true range, Wilder smoothing (see module docstring)."""

    __slots__ = ("_count", "_seed", "last_close", "period", "prev_value", "value")

    def __init__(self, period: int) -> None:
        self.period = _check_period(period)
        self.reset()

    def reset(self) -> None:
        self.value: float | None = None
        self.prev_value: float | None = None
        self.last_close: float | None = None
        self._seed = 0.0
        self._count = 0

    @property
    def initialized(self) -> bool:
        return self.value is not None

    def true_range(self, high: float, low: float) -> float:
        return _true_range(high, low, self.last_close)

    def push(self, high: float, low: float, close: float) -> None:
        tr = _true_range(high, low, self.last_close)
        self.prev_value = self.value
        self._count += 1
        self.last_close = close
        if self.value is not None:
            self.value += (tr - self.value) / self.period
        else:
            self._seed += tr
            if self._count == self.period:
                self.value = self._seed / self.period

    def update(self, bar: Bar) -> None:
        self.push(bar.high, bar.low, bar.close)

    def value_with(self, high: float, low: float) -> float | None:
        value = self.value
        if value is not None:
            return value + (_true_range(high, low, self.last_close) - value) / self.period
        if self._count == self.period - 1:
            return (self._seed + _true_range(high, low, self.last_close)) / self.period
        return None

    def frozen(self) -> WithRange:
        value, seed, period, prev = self.value, self._seed, self.period, self.last_close
        if value is not None:
            return lambda high, low: value + (_true_range(high, low, prev) - value) / period
        if self._count == period - 1:
            return lambda high, low: (seed + _true_range(high, low, prev)) / period
        return _not_yet

    def state(self) -> tuple[float | None, float | None, int, float, float | None]:
        return self.value, self.prev_value, self._count, self._seed, self.last_close

    def restore(
        self, value: float | None, prev_value: float | None, count: int, seed: float, last_close: float | None
    ) -> None:
        self.value, self.prev_value, self._count, self._seed, self.last_close = (
            value,
            prev_value,
            count,
            seed,
            last_close,
        )


class _Extreme(_Indicator):
    """Rolling max (sign=+1) or min (sign=-1) over `period` inputs. It keeps the last `period` + 1 inputs;
    the extreme of the newest period-1 of them (what a forming bar is combined with) is found when first
    read after a push, and kept until the next one: a bar close costs an append, a read of the forming
    bar's value O(1) after that first one (the bars of a backtest are closed far more often than read)."""

    __slots__ = ("_count", "_head_now", "_values", "period", "sign")

    def __init__(self, period: int, sign: int) -> None:
        self.period = _check_period(period)
        self.sign = sign
        self.reset()

    def reset(self) -> None:
        self._values: deque[float] = deque(maxlen=self.period + 1)
        self._count = 0
        self._head_now: float | object | None = _UNREAD

    def push(self, x: float) -> None:
        self._values.append(x)
        self._count += 1
        self._head_now = _UNREAD

    def _head(self) -> float | None:
        """sign * extreme of the newest period-1 inputs (None if there are none)."""
        head = self._head_now
        if head is _UNREAD:
            values, keep = self._values, self.period - 1
            newest = list(values)[-keep:] if keep and values else None
            head = self._head_now = None if newest is None else self.sign * (max(newest) if self.sign > 0
                                                                             else min(newest))
        return head  # type: ignore[return-value]  # not _UNREAD

    @property
    def value(self) -> float | None:
        if self._count < self.period:
            return None
        head = self._head()
        values = self._values
        oldest = self.sign * (values[1] if len(values) > self.period else values[0])  # the window's oldest
        return self.sign * (oldest if head is None or oldest > head else head)

    @property
    def prev_value(self) -> float | None:
        """The value as of the closed bar before the last (None until period + 1 inputs)."""
        values, period = self._values, self.period
        if self._count <= period or len(values) <= period:
            return None
        before = list(values)[:period]
        return max(before) if self.sign > 0 else min(before)

    def value_with(self, x: float) -> float | None:
        if self._count < self.period - 1:
            return None
        head, sign = self._head(), self.sign
        if head is None:  # period 1: the forming input alone
            return sign * (sign * x)
        return sign * (sign * x if sign * x > head else head)

    def frozen(self) -> WithInput:
        if self._count < self.period - 1:
            return _not_yet
        head, sign = self._head(), self.sign
        if head is None:  # period 1: the forming input alone
            return lambda x: sign * (sign * x)
        return lambda x: sign * (sign * x if sign * x > head else head)

    def restore(self, tail: Sequence[float], count: int) -> None:
        """Rebuild from the last closed inputs (see `SMA.restore`)."""
        self.reset()
        self._values.extend(tail[-self.period - 1 :])
        self._count = count


class Highest(_Extreme):
    """Highest high over the last `period` bars."""

    __slots__ = ()

    def __init__(self, period: int) -> None:
        super().__init__(period, 1)

    def update(self, bar: Bar) -> None:
        self.push(bar.high)


class Lowest(_Extreme):
    """Lowest low over the last `period` bars."""

    __slots__ = ()

    def __init__(self, period: int) -> None:
        super().__init__(period, -1)

    def update(self, bar: Bar) -> None:
        self.push(bar.low)
