"""Daily bars → weekly and monthly bars.

Conventions:
- Only trading days exist: a period's bar aggregates the daily bars it holds (special sessions
  such as Saturday budget days or the Sunday Muhurat session included; holidays and data gaps
  simply contribute nothing). Periods without any daily bar produce no bar.
- Week = Monday–Sunday calendar week; month = calendar month.
- open = first day's open, high = max high, low = min low, close = last day's close,
  volume = sum, `days` = number of daily bars.
- `ts` = the bar's start = its FIRST trading day (midnight IST), as everywhere in `BarStore`;
  `last_day` = its LAST trading day (the label a week/month is known by in reports).
This equals pandas `resample("W-SUN")` / `resample("ME")` with first/max/min/last/sum, dropping
empty periods (checked in tests/engine/indicators/test_aggregate.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.models import IST, Timeframe

AGGREGATE_COLUMNS = ["ts", "last_day", "open", "high", "low", "close", "volume", "days"]


def epoch_days(ts: pd.Series) -> np.ndarray:
    """IST calendar day of each timestamp, as int64 days since 1970-01-01."""
    local = pd.to_datetime(ts)
    if local.dt.tz is not None:
        local = local.dt.tz_convert(IST).dt.tz_localize(None)
    return local.to_numpy().astype("datetime64[D]").astype(np.int64)


def period_keys(days: np.ndarray, timeframe: Timeframe) -> np.ndarray:
    """Period of each epoch day: the day itself, its Monday-based week, or its month (months since
    1970-01). Same numbering as `engine.indicators.multitimeframe.week_key/month_key`."""
    if timeframe is Timeframe.DAY:
        return days
    if timeframe is Timeframe.WEEK:
        return (days + 3) // 7
    if timeframe is Timeframe.MONTH:
        return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    raise ValueError(f"cannot aggregate daily bars to {timeframe}")


def aggregate_arrays(
    days: np.ndarray,
    opens: np.ndarray,
    highs: np.ndarray,
    lows: np.ndarray,
    closes: np.ndarray,
    volumes: np.ndarray,
    keys: np.ndarray,
) -> dict[str, np.ndarray]:
    """Group consecutive equal `keys` (inputs sorted by day). Returns arrays start_day, last_day,
    key, open, high, low, close, volume, days."""
    if len(days) == 0:
        empty_i = np.empty(0, np.int64)
        empty_f = np.empty(0, np.float64)
        return {
            "start_day": empty_i, "last_day": empty_i, "key": empty_i, "open": empty_f, "high": empty_f,
            "low": empty_f, "close": empty_f, "volume": empty_f, "days": empty_i,
        }  # fmt: skip
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(days)] - 1
    return {
        "start_day": days[starts],
        "last_day": days[ends],
        "key": keys[starts],
        "open": opens[starts],
        "high": np.maximum.reduceat(highs, starts),
        "low": np.minimum.reduceat(lows, starts),
        "close": closes[ends],
        "volume": np.add.reduceat(volumes.astype(np.float64), starts),
        "days": ends - starts + 1,
    }


def _day_ts(days: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(days.astype("datetime64[D]")).tz_localize(IST))


def aggregate_bars(daily: pd.DataFrame, timeframe: Timeframe | str) -> pd.DataFrame:
    """Weekly or monthly bars from daily bars (a `BarStore.read` frame). Columns: `AGGREGATE_COLUMNS`."""
    tf = Timeframe(timeframe)
    frame = daily.sort_values("ts")
    days = epoch_days(frame["ts"])
    if len(days) and (np.diff(days) <= 0).any():
        raise ValueError("daily bars must have one row per day")
    grouped = aggregate_arrays(
        days,
        frame["open"].to_numpy(np.float64),
        frame["high"].to_numpy(np.float64),
        frame["low"].to_numpy(np.float64),
        frame["close"].to_numpy(np.float64),
        frame["volume"].to_numpy(np.float64),
        period_keys(days, tf),
    )
    return pd.DataFrame(
        {
            "ts": _day_ts(grouped["start_day"]),
            "last_day": _day_ts(grouped["last_day"]),
            "open": grouped["open"],
            "high": grouped["high"],
            "low": grouped["low"],
            "close": grouped["close"],
            "volume": grouped["volume"],
            "days": grouped["days"],
        },
        columns=AGGREGATE_COLUMNS,
    )
