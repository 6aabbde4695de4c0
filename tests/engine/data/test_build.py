"""Pure helpers of the data build (the build itself reads ../shared and runs via `autotrader data build`)."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.data.build import (
    aggregate_daily,
    back_adjust,
    gap_split_factor,
    repair_open_outside_range,
    snap_factor,
)
from engine.models import IST


def test_repair_widens_high_low_to_open_and_close() -> None:
    frame = pd.DataFrame({"open": [100.0, 101.0, 99.0], "high": [102.0, 100.5, 100.0],
                          "low": [99.0, 100.0, 99.5], "close": [101.0, 100.2, 99.8]})
    repaired, changed = repair_open_outside_range(frame)
    assert changed == 2
    assert repaired["high"].tolist() == [102.0, 101.0, 100.0]
    assert repaired["low"].tolist() == [99.0, 100.0, 99.0]


def test_aggregate_daily_uses_first_open_and_last_close() -> None:
    ts = pd.date_range("2024-06-03 09:15", periods=3, freq="5min", tz=IST)
    frame = pd.DataFrame({"ts": ts, "open": [10.0, 11.0, 12.0], "high": [11.0, 13.0, 12.5],
                          "low": [9.0, 10.5, 11.5], "close": [11.0, 12.0, 12.2], "volume": [1, 2, 3]})
    daily = aggregate_daily(frame)
    assert daily.iloc[0].to_dict() == {"ts": pd.Timestamp("2024-06-03", tz=IST), "open": 10.0, "high": 13.0,
                                       "low": 9.0, "close": 12.2, "volume": 6}


@pytest.mark.parametrize(("raw", "snapped"), [(1.004, 1.0), (1.996, 2.0), (10.03, 10.0), (0.2004, 0.2),
                                              (0.9814, 0.9814)])
def test_snap_factor(raw: float, snapped: float) -> None:
    assert snap_factor(raw) == pytest.approx(snapped)


def test_gap_split_factor_ignores_ordinary_moves() -> None:
    assert gap_split_factor(100.0, 140.0) == 1.0
    assert gap_split_factor(100.0, 75.0) == 1.0
    assert gap_split_factor(590.0, 119.0) == pytest.approx(0.2)  # CANBK 1:5 split
    assert gap_split_factor(600.0, 332.5) == pytest.approx(0.5)  # BPCL 1:1 bonus


def _daily(closes: list[float], opens: list[float] | None = None) -> pd.DataFrame:
    ts = pd.date_range("2021-10-20", periods=len(closes), freq="B", tz=IST)
    opens = opens or closes
    return pd.DataFrame({"ts": ts, "open": opens, "high": [max(o, c) for o, c in zip(opens, closes, strict=True)],
                         "low": [min(o, c) for o, c in zip(opens, closes, strict=True)], "close": closes,
                         "volume": [1000] * len(closes)})


def test_back_adjust_split() -> None:
    repair = back_adjust(_daily([4189.5, 4130.15, 913.5, 845.7], opens=[4100.0, 4250.5, 817.0, 822.15]))
    assert [(a.ratio) for a in repair.actions] == [0.2]
    assert repair.frame["close"].tolist() == [pytest.approx(837.9), pytest.approx(826.03), 913.5, 845.7]
    assert repair.frame["volume"].tolist() == [5000, 5000, 1000, 1000]


def test_back_adjust_drops_foreign_series_stretch() -> None:
    closes = [3400.0, 3410.0, 29.25, 29.4, 29.3, 3420.0, 3430.0]
    repair = back_adjust(_daily(closes))
    assert repair.actions == []
    assert len(repair.dropped) == 1
    assert repair.frame["close"].tolist() == [3400.0, 3410.0, 3420.0, 3430.0]


def test_back_adjust_leaves_unexplained_jumps() -> None:
    repair = back_adjust(_daily([100.0, 100.0, 56.0, 57.0]))  # demerger-like fall, no usual ratio
    assert repair.actions == [] and repair.dropped == []
    assert [r for _, r in repair.unexplained] == [0.56]
    assert repair.frame["close"].tolist() == [100.0, 100.0, 56.0, 57.0]
