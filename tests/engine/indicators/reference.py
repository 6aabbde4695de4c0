"""Batch pandas recomputation of the indicators (the independent reference for the tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.indicators import IndicatorConfig
from engine.models import IST


def synthetic_daily(days: int = 700, seed: int = 1, start: str = "2019-01-01") -> pd.DataFrame:
    """Random-walk daily bars on weekdays, with holidays dropped, a Saturday special session and a
    Sunday Muhurat-like session (a BarStore frame)."""
    rng = np.random.default_rng(seed)
    calendar = pd.date_range(start, periods=int(days * 1.5) + 60, freq="D")
    weekday = calendar[calendar.day_of_week < 5]
    holidays = rng.choice(len(weekday), size=len(weekday) // 40, replace=False)
    keep = np.ones(len(weekday), bool)
    keep[holidays] = False
    trading = weekday[keep]
    weekend = calendar[calendar.day_of_week >= 5]
    specials = weekend[rng.choice(len(weekend), size=4, replace=False)]
    index = trading.union(specials)[:days]
    n = len(index)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.015, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.01, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.01, n)))
    volume = rng.integers(1_000, 5_000_000, n)
    return pd.DataFrame(
        {
            "ts": index.tz_localize(IST),
            "open": np.round(open_, 2),
            "high": np.round(high, 2),
            "low": np.round(low, 2),
            "close": np.round(close, 2),
            "volume": volume.astype(np.int64),
        }
    )


def resample(daily: pd.DataFrame, rule: str) -> pd.DataFrame:
    """pandas resample ("W-SUN" or "ME") with first/max/min/last/sum, empty periods dropped."""
    bars = (
        daily.set_index("ts")
        .resample(rule)
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    )
    return bars.dropna(subset=["open"])


def _seeded(x: pd.Series, n: int, alpha: float) -> pd.Series:
    out = pd.Series(np.nan, index=x.index)
    if len(x) < n:
        return out
    seeded = x.iloc[n - 1 :].copy()
    seeded.iloc[0] = x.iloc[:n].mean()
    out.iloc[n - 1 :] = seeded.ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return out


def reference_values(bars: pd.DataFrame, config: IndicatorConfig) -> pd.DataFrame:
    """Indicator values after each bar (closed), plus `<name>_prev` = the value one bar earlier."""
    close, high, low = bars["close"], bars["high"], bars["low"]
    volume = bars["volume"].astype(float)
    out: dict[str, pd.Series] = {}
    for n in config.sma_periods:
        out[f"sma_{n}"] = close.rolling(n).mean()
    for n in config.ema_periods:
        out[f"ema_{n}"] = _seeded(close, n, 2 / (n + 1))
    prev_close = close.shift(1)
    true_range = pd.concat([high - low, (high - prev_close).abs(), (low - prev_close).abs()], axis=1).max(axis=1)
    for n in config.atr_periods:
        out[f"atr_{n}"] = _seeded(true_range, n, 1 / n)
    for n in config.extreme_periods:
        out[f"highest_high_{n}"] = high.rolling(n).max()
        out[f"lowest_low_{n}"] = low.rolling(n).min()
    for n in config.avg_volume_periods:
        out[f"avg_volume_{n}"] = volume.rolling(n).mean()
    frame = pd.DataFrame(out)
    for name in list(frame.columns):
        frame[f"{name}_prev"] = frame[name].shift(1)
    return frame


def assert_close(actual: float | None, expected: float, context: str, rel: float = 1e-9) -> None:
    if np.isnan(expected):
        assert actual is None, f"{context}: expected None, got {actual}"
        return
    assert actual is not None, f"{context}: expected {expected}, got None"
    assert abs(actual - expected) <= rel * max(abs(expected), 1e-12), f"{context}: {actual} != {expected}"


def assert_arrays_close(actual: np.ndarray, expected: np.ndarray, context: str, rel: float = 1e-9) -> None:
    """Element-wise `assert_close` for float arrays (NaN = None: must be missing on both sides)."""
    missing_actual, missing_expected = np.isnan(actual), np.isnan(expected)
    bad = np.flatnonzero(missing_actual != missing_expected)
    assert len(bad) == 0, f"{context}: missing mismatch at rows {bad[:5]}: {actual[bad[:5]]} vs {expected[bad[:5]]}"
    ok = ~missing_expected
    error = np.abs(actual[ok] - expected[ok]) / np.maximum(np.abs(expected[ok]), 1e-12)
    worst = int(np.argmax(error)) if len(error) else 0
    assert not len(error) or error[worst] <= rel, f"{context}: relative error {error[worst]:.3g} at row {worst}"
