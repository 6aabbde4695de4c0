"""Pre-open indicator metadata: each instrument's closed-bar indicator state as of a day's close,
computed from the daily Parquet history (vectorised numpy), saved as one Parquet file with a schema
version, and loaded at session start into live `InstrumentIndicators`.

The state is what `InstrumentIndicators` needs to continue incrementally (`FrameState` per
timeframe): the last closed bars (`config.history_lengths` per column: every window and its `_prev`
is rebuilt from them), EMA/ATR (value, prev, count, seed), the count of closed bars, and the forming
week's/month's closed days. As of `asof`'s close the week and month containing `asof` are forming
(a later session of the same week may still come); they close when a later week/month begins.

File layout (Parquet, one row per symbol and timeframe, `SCHEMA_VERSION` in the schema metadata
under `autotrader.indicators.schema_version`, with `asof` and the `IndicatorConfig` as JSON):
symbol, instrument_key, history_complete, timeframe ("1d"|"1w"|"1mo"), last_day (epoch day of the
last closed daily bar), closed_count, hist_start (list<int64> epoch days), hist_open/high/low/close/
volume (list<float64>), ema_value/ema_prev/ema_seed (list<float64>, one per EMA period, NaN = None),
ema_count (list<int64>), atr_value/atr_prev/atr_seed/atr_count likewise, partial_start, partial_key,
partial_open/high/low/close/volume, partial_days (null when no forming week/month).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.indicators.aggregate import aggregate_arrays, period_keys
from engine.indicators.multitimeframe import (
    DAY_MS,
    IST_OFFSET_MS,
    TIMEFRAMES,
    FrameState,
    IndicatorConfig,
    InstrumentIndicators,
    day_number,
)
from engine.models import Timeframe
from engine.storage.bars import BarStore

SCHEMA_VERSION = 1
SCHEMA_VERSION_KEY = b"autotrader.indicators.schema_version"
ASOF_KEY = b"autotrader.indicators.asof"
CONFIG_KEY = b"autotrader.indicators.config"
READ_THREADS = 4
HIST_SOURCES = ("start_day", "open", "high", "low", "close", "volume")  # FrameState.hist_* order


class MetadataError(ValueError):
    """A metadata file that cannot be used (wrong schema version, corrupt)."""


@dataclass(slots=True)
class MetadataSet:
    asof: date
    config: IndicatorConfig
    instruments: dict[str, InstrumentIndicators] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # symbols without any daily bar up to asof
    errors: dict[str, str] = field(default_factory=dict)  # symbols whose bars could not be used, and why
    rejected_bars: dict[str, int] = field(default_factory=dict)  # bad bars skipped (as `on_bar` would)


# ---- vectorised state from arrays ---------------------------------------------------------------
class _Powers:
    """(1 - alpha) ** k for k = 0..n, extended on demand (shared across symbols)."""

    def __init__(self) -> None:
        self._cache: dict[float, np.ndarray] = {}

    def get(self, decay: float, length: int) -> np.ndarray:
        table = self._cache.get(decay)
        if table is None or len(table) < length:
            table = decay ** np.arange(max(length, 2048), dtype=np.float64)
            self._cache[decay] = table
        return table[:length]


def _smoothed_state(x: np.ndarray, period: int, alpha: float, powers: _Powers) -> tuple[float, float, int, float]:
    """Final (value, prev, count, seed) of an SMA-seeded recursion v += alpha * (x - v), closed form:
    v_m = (1-a)^m s + a * sum_j (1-a)^(m-1-j) x_{period+j}."""
    count = len(x)
    if count < period:
        return np.nan, np.nan, count, float(x.sum())
    seed_sum = float(x[:period].sum())
    seed = seed_sum / period
    steps = count - period
    if steps == 0:
        return seed, np.nan, count, seed_sum
    decay = 1.0 - alpha
    weights = powers.get(decay, steps + 1)
    rest = x[period:]
    value = weights[steps] * seed + alpha * float(np.dot(weights[steps - 1 :: -1], rest))
    prev = seed
    if steps > 1:
        prev = weights[steps - 1] * seed + alpha * float(np.dot(weights[steps - 2 :: -1], rest[:-1]))
    return value, prev, count, seed_sum


def _frame_state(bars: dict[str, np.ndarray], closed: int, config: IndicatorConfig, powers: _Powers) -> FrameState:
    closes = bars["close"][:closed]
    highs = bars["high"][:closed]
    lows = bars["low"][:closed]
    tails = [
        bars[column][max(0, closed - length) : closed].tolist()
        for column, length in zip(HIST_SOURCES, config.history_lengths, strict=True)
    ]
    state = FrameState(closed, *tails)
    state.ema = [_smoothed_state(closes, n, 2.0 / (n + 1), powers) for n in config.ema_periods]
    if config.atr_periods:
        true_range = highs - lows
        if closed > 1:
            prev_close = closes[:-1]
            true_range[1:] = np.maximum(
                true_range[1:], np.maximum(np.abs(highs[1:] - prev_close), np.abs(lows[1:] - prev_close))
            )
        state.atr = [_smoothed_state(true_range, n, 1.0 / n, powers) for n in config.atr_periods]
    if closed < len(bars["close"]):  # the last group is the forming week/month
        i = closed
        state.partial = (
            int(bars["start_day"][i]),
            int(bars["key"][i]),
            float(bars["open"][i]),
            float(bars["high"][i]),
            float(bars["low"][i]),
            float(bars["close"][i]),
            float(bars["volume"][i]),
            int(bars["days"][i]),
        )
    return state


def indicators_from_arrays(
    symbol: str,
    days: np.ndarray,
    opens: np.ndarray,
    highs: np.ndarray,
    lows: np.ndarray,
    closes: np.ndarray,
    volumes: np.ndarray,
    asof: date,
    config: IndicatorConfig,
    instrument_key: str = "",
    powers: _Powers | None = None,
) -> InstrumentIndicators:
    """`InstrumentIndicators` as of `asof`'s close from sorted daily arrays (days = epoch days, all <= asof)."""
    powers = powers or _Powers()
    asof_day = day_number(asof)
    frames: list[FrameState] = []
    for tf in TIMEFRAMES:
        keys = period_keys(days, tf)
        bars = aggregate_arrays(days, opens, highs, lows, closes, volumes, keys)
        count = len(bars["close"])
        forming = (
            tf is not Timeframe.DAY
            and count > 0
            and bars["key"][-1] == period_keys(np.array([asof_day], np.int64), tf)[0]
        )
        frames.append(_frame_state(bars, count - 1 if forming else count, config, powers))
    last_day = int(days[-1]) if len(days) else -1
    return InstrumentIndicators.from_state(symbol, config, last_day, frames, instrument_key)


_DailyArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class _Daily(NamedTuple):
    arrays: _DailyArrays
    rejected: int


def read_daily_columns(store: BarStore, symbol: str) -> _DailyArrays | None:
    """All of the symbol's daily bars as columns: IST day (epoch day, see `day_number`), open, high, low,
    close, volume. None without a file."""
    path = store.path(symbol, Timeframe.DAY)
    if not path.exists():
        return None
    table = pq.ParquetFile(path).read(columns=["ts", "open", "high", "low", "close", "volume"])
    # ts is midnight IST; +05:30 then floor to days gives the IST calendar day.
    ts_ns = table.column("ts").cast(pa.timestamp("ns")).to_numpy().astype(np.int64)
    days = (ts_ns + IST_OFFSET_MS * 1_000_000) // (DAY_MS * 1_000_000)
    o, h, lo, c, v = (
        table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        for name in ("open", "high", "low", "close", "volume")
    )
    return days, o, h, lo, c, v


def _read_daily(store: BarStore, symbol: str, asof_day: int) -> _Daily | None:
    """The symbol's daily bars up to `asof_day`, bad bars dropped and counted (the same test as
    `on_bar`: positive finite prices, low <= open, close <= high, volume >= 0). None without a file."""
    columns = read_daily_columns(store, symbol)
    if columns is None:
        return None
    days, o, h, lo, c, v = columns
    in_range = days <= asof_day
    with np.errstate(invalid="ignore"):
        valid = (lo > 0) & (lo <= o) & (o <= h) & (h < np.inf) & (lo <= c) & (c <= h) & (v >= 0)
    keep = in_range & valid
    days = days[keep]
    if not (np.diff(days) > 0).all():
        raise ValueError(f"{symbol}: daily bars are not sorted by day without duplicates "
                         f"({store.path(symbol, Timeframe.DAY)})")
    return _Daily((days, o[keep], h[keep], lo[keep], c[keep], v[keep]), int((in_range & ~valid).sum()))


def _try_read_daily(store: BarStore, symbol: str, asof_day: int) -> _Daily | str | None:
    try:
        return _read_daily(store, symbol, asof_day)
    except (OSError, ValueError, pa.ArrowException) as exc:  # one bad file must not stop the others
        return f"{type(exc).__name__}: {exc}"


def build_metadata(
    store: BarStore,
    symbols: Iterable[str],
    asof: date,
    config: IndicatorConfig | None = None,
    instrument_keys: dict[str, str] | None = None,
    history_complete: dict[str, bool] | None = None,
) -> MetadataSet:
    """Indicator state of each symbol as of `asof`'s close from the daily bars in `store`
    (`instrument_keys`/`history_complete`: per-symbol labels carried into the snapshots).
    Symbols without bars go to `missing`, unreadable ones to `errors`; bad bars are skipped and
    counted in `rejected_bars`."""
    config = config or IndicatorConfig()
    keys = instrument_keys or {}
    complete = history_complete or {}
    result = MetadataSet(asof=asof, config=config)
    powers = _Powers()
    asof_day = day_number(asof)
    wanted = list(symbols)
    # Parquet reads release the GIL: prefetch them on threads while this thread computes.
    with _gc_paused(), ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        for symbol, daily in zip(wanted, pool.map(lambda s: _try_read_daily(store, s, asof_day), wanted), strict=True):
            if isinstance(daily, str):
                result.errors[symbol] = daily
                continue
            if daily is not None and daily.rejected:
                result.rejected_bars[symbol] = daily.rejected
            if daily is None or not len(daily.arrays[0]):
                result.missing.append(symbol)
                continue
            indicators = indicators_from_arrays(
                symbol, *daily.arrays, asof=asof, config=config, instrument_key=keys.get(symbol, ""), powers=powers
            )
            indicators.history_complete = complete.get(symbol, True)
            result.instruments[symbol] = indicators
    return result


# ---- file format --------------------------------------------------------------------------------
_LIST_F = pa.list_(pa.float64())
_LIST_I = pa.list_(pa.int64())
FILE_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("instrument_key", pa.string()),
        ("history_complete", pa.bool_()),
        ("timeframe", pa.string()),
        ("last_day", pa.int64()),
        ("closed_count", pa.int64()),
        ("hist_start", _LIST_I),
        ("hist_open", _LIST_F),
        ("hist_high", _LIST_F),
        ("hist_low", _LIST_F),
        ("hist_close", _LIST_F),
        ("hist_volume", _LIST_F),
        ("ema_value", _LIST_F),
        ("ema_prev", _LIST_F),
        ("ema_count", _LIST_I),
        ("ema_seed", _LIST_F),
        ("atr_value", _LIST_F),
        ("atr_prev", _LIST_F),
        ("atr_count", _LIST_I),
        ("atr_seed", _LIST_F),
        ("partial_start", pa.int64()),
        ("partial_key", pa.int64()),
        ("partial_open", pa.float64()),
        ("partial_high", pa.float64()),
        ("partial_low", pa.float64()),
        ("partial_close", pa.float64()),
        ("partial_volume", pa.float64()),
        ("partial_days", pa.int64()),
    ]
)
_PARTIAL_FIELDS = ("start", "key", "open", "high", "low", "close", "volume", "days")
_SMOOTHED_PARTS = ("value", "prev", "count", "seed")  # an EMA/ATR state, one list column each


def _smoothed_states(data: dict[str, list[Any]], kind: str, row: int) -> list[tuple[float, float, int, float]]:
    """The (value, prev, count, seed) of each EMA or ATR period in one row of a metadata file."""
    values, prevs, counts, seeds = (data[f"{kind}_{part}"][row] for part in _SMOOTHED_PARTS)
    return list(zip(values, prevs, counts, seeds, strict=True))


def save_metadata(path: Path | str, metadata: MetadataSet) -> Path:
    """Write `metadata` atomically (temp file + rename). Returns the path."""
    path = Path(path)
    columns: dict[str, list[Any]] = {name: [] for name in FILE_SCHEMA.names}
    for symbol, indicators in metadata.instruments.items():
        if indicators.config != metadata.config:
            raise ValueError(f"{symbol}: indicator config differs from the metadata config")
        last_day, frames = indicators.export_state()
        for tf, state in zip(TIMEFRAMES, frames, strict=True):
            columns["symbol"].append(symbol)
            columns["instrument_key"].append(indicators.instrument_key)
            columns["history_complete"].append(indicators.history_complete)
            columns["timeframe"].append(tf.value)
            columns["last_day"].append(last_day)
            columns["closed_count"].append(state.closed_count)
            for name in ("start", "open", "high", "low", "close", "volume"):
                columns[f"hist_{name}"].append(getattr(state, f"hist_{name}"))
            for kind, rows in (("ema", state.ema), ("atr", state.atr)):
                for i, part in enumerate(_SMOOTHED_PARTS):
                    columns[f"{kind}_{part}"].append([row[i] for row in rows])
            for i, name in enumerate(_PARTIAL_FIELDS):
                columns[f"partial_{name}"].append(None if state.partial is None else state.partial[i])
    schema = FILE_SCHEMA.with_metadata(
        {
            SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode(),
            ASOF_KEY: metadata.asof.isoformat().encode(),
            CONFIG_KEY: json.dumps(metadata.config.to_dict()).encode(),
        }
    )
    table = pa.Table.from_pydict(columns, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return path


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building thousands of small objects next to millions of floats triggers full cyclic-GC
    passes that cost more than the work itself; none of these objects form cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_metadata(path: Path | str) -> MetadataSet:
    """Load a metadata file written by `save_metadata` (checks the schema version)."""
    with _gc_paused():
        return _read_metadata(path)


def _read_metadata(path: Path | str) -> MetadataSet:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise MetadataError(f"cannot read indicator metadata {path}: {exc}") from exc
    meta = table.schema.metadata or {}
    version = meta.get(SCHEMA_VERSION_KEY)
    if version != str(SCHEMA_VERSION).encode():
        raise MetadataError(
            f"{path}: indicator metadata schema version {version!r}, expected {SCHEMA_VERSION}; "
            "rebuild it with `autotrader metadata build`"
        )
    try:
        config = IndicatorConfig.from_dict(json.loads(meta[CONFIG_KEY]))
        asof = date.fromisoformat(meta[ASOF_KEY].decode())
    except (KeyError, TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise MetadataError(f"{path}: unusable indicator config or asof ({exc}); rebuild it") from exc
    result = MetadataSet(asof=asof, config=config)
    data = table.to_pydict()
    frames: list[FrameState] = []
    for row in range(table.num_rows):
        partial = None
        if data["partial_start"][row] is not None:
            partial = tuple(data[f"partial_{name}"][row] for name in _PARTIAL_FIELDS)
        frames.append(
            FrameState(
                closed_count=data["closed_count"][row],
                hist_start=data["hist_start"][row],
                hist_open=data["hist_open"][row],
                hist_high=data["hist_high"][row],
                hist_low=data["hist_low"][row],
                hist_close=data["hist_close"][row],
                hist_volume=data["hist_volume"][row],
                ema=_smoothed_states(data, "ema", row),
                atr=_smoothed_states(data, "atr", row),
                partial=partial,  # type: ignore[arg-type]
            )
        )
        if len(frames) == len(TIMEFRAMES):
            first = row + 1 - len(TIMEFRAMES)
            if data["timeframe"][first : row + 1] != [tf.value for tf in TIMEFRAMES]:
                raise MetadataError(f"{path}: rows of {data['symbol'][row]} are not daily, weekly, monthly")
            symbol = data["symbol"][row]
            result.instruments[symbol] = InstrumentIndicators.from_state(
                symbol,
                config,
                data["last_day"][row],
                frames,
                instrument_key=data["instrument_key"][row],
                history_complete=data["history_complete"][row],
            )
            frames = []
    return result


def load_metadata(path: Path | str) -> dict[str, InstrumentIndicators]:
    """symbol → live `InstrumentIndicators`, ready for the session's ticks."""
    return read_metadata(path).instruments
