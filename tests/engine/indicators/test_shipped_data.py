"""Every shipped symbol (data/bars/timeframe=1d): indicators folded bar by bar equal a batch pandas
computation (resample + rolling) to 1e-9 relative, on the daily, weekly and monthly timeframes;
the vectorised metadata build equals the incremental state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.indicators import IndicatorConfig, InstrumentIndicators
from engine.indicators.aggregate import epoch_days, period_keys
from engine.indicators.metadata import build_metadata
from engine.models import Timeframe
from engine.storage.bars import BarStore
from tests.engine.indicators.reference import assert_arrays_close, reference_values, resample

DATA = Path(__file__).resolve().parents[3] / "data" / "bars"
STORE = BarStore(DATA)
SYMBOLS = STORE.symbols("1d")
CONFIG = IndicatorConfig()
pytestmark = pytest.mark.skipif(not SYMBOLS, reason="no shipped daily bars in data/bars")


def _as_row(values: dict[str, float | None], names: list[str]) -> list[float]:
    return [np.nan if values[n] is None else values[n] for n in names]  # type: ignore[misc]


@pytest.mark.parametrize("chunk", range(4))
def test_incremental_equals_pandas_for_every_shipped_symbol(chunk: int) -> None:
    symbols = SYMBOLS[chunk::4]
    for symbol in symbols:
        daily = STORE.read(symbol, "1d")
        days = epoch_days(daily["ts"])
        week_end = np.r_[period_keys(days, Timeframe.WEEK)[1:] != period_keys(days, Timeframe.WEEK)[:-1], True]
        month_end = np.r_[period_keys(days, Timeframe.MONTH)[1:] != period_keys(days, Timeframe.MONTH)[:-1], True]
        indicators = InstrumentIndicators(symbol, CONFIG)
        names: list[str] = []
        rows: dict[Timeframe, list[list[float]]] = {Timeframe.DAY: [], Timeframe.WEEK: [], Timeframe.MONTH: []}
        columns = [daily[c].to_numpy() for c in ("open", "high", "low", "close", "volume")]
        for i, (day, o, h, lo, c, v) in enumerate(zip(days, *columns, strict=True)):
            assert indicators.add_daily_bar(int(day), o, h, lo, c, float(v)), (symbol, i)
            values = indicators.frame_values(Timeframe.DAY)
            names = names or list(values)
            rows[Timeframe.DAY].append(_as_row(values, names))
            if week_end[i]:
                rows[Timeframe.WEEK].append(_as_row(indicators.frame_values(Timeframe.WEEK), names))
            if month_end[i]:
                rows[Timeframe.MONTH].append(_as_row(indicators.frame_values(Timeframe.MONTH), names))
        assert not indicators.rejections, (symbol, indicators.rejections)
        for tf, bars in (
            (Timeframe.DAY, daily.set_index("ts")),
            (Timeframe.WEEK, resample(daily, "W-SUN")),
            (Timeframe.MONTH, resample(daily, "ME")),
        ):
            expected = reference_values(bars, CONFIG)[names].to_numpy(np.float64)
            actual = np.array(rows[tf], dtype=np.float64)
            assert actual.shape == expected.shape, (symbol, tf)
            for j, name in enumerate(names):
                assert_arrays_close(actual[:, j], expected[:, j], f"{symbol} {tf} {name}")
        # the vectorised metadata build lands on the same state
        built = build_metadata(STORE, [symbol], daily["ts"].iloc[-1].date(), CONFIG).instruments[symbol]
        for tf in (Timeframe.DAY, Timeframe.WEEK, Timeframe.MONTH):
            assert_arrays_close(
                np.array(_as_row(built.frame_values(tf), names), np.float64),
                np.array(_as_row(indicators.frame_values(tf), names), np.float64),
                f"{symbol} metadata {tf}",
            )
