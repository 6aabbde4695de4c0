from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.indicators.aggregate import aggregate_bars
from engine.models import IST, Timeframe
from tests.engine.indicators.reference import resample


@pytest.mark.parametrize(("timeframe", "rule"), [(Timeframe.WEEK, "W-SUN"), (Timeframe.MONTH, "ME")])
def test_aggregation_equals_pandas_resample(daily_fixture: pd.DataFrame, timeframe: Timeframe, rule: str) -> None:
    ours = aggregate_bars(daily_fixture, timeframe)
    theirs = resample(daily_fixture, rule)
    assert len(ours) == len(theirs)
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(ours[column].to_numpy(), theirs[column].to_numpy(np.float64))
    # ts = first trading day of the period, last_day = last trading day; both inside pandas' bin
    bins = theirs.index  # right edge: Sunday / month end (midnight)
    assert (ours["last_day"].to_numpy() <= bins.to_numpy()).all()
    assert (ours["ts"] <= ours["last_day"]).all()
    assert ours["days"].sum() == len(daily_fixture)


def test_special_sessions_holidays_and_gaps_fall_in_their_calendar_week() -> None:
    days = ["2023-11-10", "2023-11-12", "2023-11-13", "2024-01-19", "2024-01-20", "2024-01-22", "2024-03-01"]
    daily = pd.DataFrame(
        {
            "ts": pd.to_datetime(days).tz_localize(IST),
            "open": [1.0, 2, 3, 4, 5, 6, 7],
            "high": [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5],
            "low": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5],
            "close": [1.2, 2.2, 3.2, 4.2, 5.2, 6.2, 7.2],
            "volume": [10, 20, 30, 40, 50, 60, 70],
        }
    )
    weekly = aggregate_bars(daily, Timeframe.WEEK)
    # Sunday 2023-11-12 (Muhurat) closes the week of Mon 11-06; Saturday 2024-01-20 joins its week;
    # the weeks without data (gap) produce no bar.
    assert [d.date().isoformat() for d in weekly["ts"]] == ["2023-11-10", "2023-11-13", "2024-01-19", "2024-01-22",
                                                            "2024-03-01"]  # fmt: skip
    assert [d.date().isoformat() for d in weekly["last_day"]] == ["2023-11-12", "2023-11-13", "2024-01-20",
                                                                  "2024-01-22", "2024-03-01"]  # fmt: skip
    assert weekly["volume"].tolist() == [30, 30, 90, 60, 70]
    assert weekly["close"].tolist() == [2.2, 3.2, 5.2, 6.2, 7.2]
    monthly = aggregate_bars(daily, Timeframe.MONTH)
    assert monthly["days"].tolist() == [3, 3, 1]
    assert monthly["high"].tolist() == [3.5, 6.5, 7.5]


def test_duplicate_days_are_refused() -> None:
    daily = pd.DataFrame(
        {"ts": pd.to_datetime(["2024-01-02", "2024-01-02"]).tz_localize(IST), "open": [1.0, 1], "high": [1.0, 1],
         "low": [1.0, 1], "close": [1.0, 1], "volume": [1, 1]}
    )  # fmt: skip
    with pytest.raises(ValueError, match="one row per day"):
        aggregate_bars(daily, Timeframe.WEEK)
