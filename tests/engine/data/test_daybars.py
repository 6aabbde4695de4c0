"""`engine.data.daybars`: the official daily candle replaces the bar built from ticks, missed days are filled, an
ltpc bar is never stored with volume 0, the feed's day OHLC corrects a late start, and the quality report says so."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path

import pandas as pd
import pytest

from engine.calendar import NseCalendar
from engine.data.daybars import (
    DayBarError,
    DayBarTokenRejectedError,
    DayCandle,
    DayQuality,
    built_candle,
    parse_day_candles,
    settle_day_bars,
    with_exchange_ohlc,
)
from engine.models import IST, Instrument, Tick
from engine.storage.bars import BarStore

RELIANCE = Instrument("NSE_EQ|INE002A01018", "RELIANCE", "INE002A01018", kite_token=738561)
MON, TUE, WED = date(2024, 6, 3), date(2024, 6, 4), date(2024, 6, 5)
FRI = date(2024, 5, 31)
OFFICIAL = {
    MON: DayCandle(MON, 2960.0, 3020.5, 2901.25, 3002.1, 18_000_000),
    TUE: DayCandle(TUE, 3002.0, 3010.0, 2740.0, 2830.9, 35_500_000),
    WED: DayCandle(WED, 2830.0, 2905.0, 2801.0, 2889.3, 21_000_000),
}
TRADING_DAYS = NseCalendar.load().trading_days


class StubSource:
    name = "stub"

    def __init__(self, candles: dict[date, DayCandle] | None = None, error: str | None = None,
                 error_class: type[DayBarError] = DayBarError) -> None:
        self.candles = OFFICIAL if candles is None else candles
        self.error, self.error_class = error, error_class
        self.asked: list[tuple[str, date, date]] = []

    def fetch(self, instrument: Instrument, start: date, end: date) -> list[DayCandle]:
        self.asked.append((instrument.symbol, start, end))
        if self.error:
            raise self.error_class(self.error)
        return [c for d, c in sorted(self.candles.items()) if start <= d <= end]


def _store(tmp_path: Path, days: Sequence[DayCandle]) -> BarStore:
    store = BarStore(tmp_path / "bars")
    if days:
        store.write("RELIANCE", "1d", pd.DataFrame([c.row() for c in days],
                                                   columns=["ts", "open", "high", "low", "close", "volume"]))
    return store


def _stored(store: BarStore) -> dict[date, tuple[float, float, float, float, int]]:
    return {b.ts.date(): (b.open, b.high, b.low, b.close, b.volume) for b in store.read_bars("RELIANCE", "1d")}


FRIDAY_BAR = DayCandle(FRI, 2900.0, 2950.0, 2880.0, 2940.0, 12_000_000)
# Built from ticks by a session that started late: wrong open and low, the last trade as the close.
LATE_START = DayCandle(WED, 2850.0, 2905.0, 2820.0, 2890.0, 19_000_000)


def test_the_official_candle_replaces_the_bar_built_from_ticks_and_each_field_is_reported(tmp_path: Path) -> None:
    store = _store(tmp_path, [FRIDAY_BAR, OFFICIAL[MON], OFFICIAL[TUE]])
    quality = settle_day_bars(store, [RELIANCE], WED, {"RELIANCE": LATE_START}, StubSource(), TRADING_DAYS)
    assert _stored(store)[WED] == (2830.0, 2905.0, 2801.0, 2889.3, 21_000_000)
    assert [(r["field"], r["was"], r["now"]) for r in quality.replaced] == [
        ("open", 2850.0, 2830.0), ("low", 2820.0, 2801.0), ("close", 2890.0, 2889.3),
        ("volume", 19_000_000, 21_000_000)]
    assert quality.written == 1 and not quality.gaps and not quality.filled


def test_a_stored_bar_is_replaced_too_and_a_rerun_writes_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path, [OFFICIAL[MON], OFFICIAL[TUE], LATE_START])  # appended by an older post-close
    first = settle_day_bars(store, [RELIANCE], WED, {}, StubSource(), TRADING_DAYS)
    assert _stored(store)[WED][0] == 2830.0 and {r["field"] for r in first.replaced} == {"open", "low", "close",
                                                                                         "volume"}
    again = settle_day_bars(store, [RELIANCE], WED, {}, StubSource(), TRADING_DAYS)
    assert again.written == 0 and again.replaced == []


def test_missed_days_since_the_last_stored_bar_are_filled(tmp_path: Path) -> None:
    store = _store(tmp_path, [FRIDAY_BAR])  # Monday and Tuesday were missed
    source = StubSource()
    quality = settle_day_bars(store, [RELIANCE], WED, {"RELIANCE": LATE_START}, source, TRADING_DAYS)
    assert source.asked == [("RELIANCE", date(2024, 6, 1), WED)]  # one request, from the day after the last bar
    assert sorted(_stored(store)) == [FRI, MON, TUE, WED]
    assert _stored(store)[MON] == (2960.0, 3020.5, 2901.25, 3002.1, 18_000_000)
    assert quality.filled == [{"symbol": "RELIANCE", "day": "2024-06-03"}, {"symbol": "RELIANCE", "day": "2024-06-04"}]
    assert quality.written == 3


def test_a_day_no_source_has_stays_a_reported_gap(tmp_path: Path) -> None:
    store = _store(tmp_path, [FRIDAY_BAR])
    official = {WED: OFFICIAL[WED]}  # the broker has lost Monday and Tuesday
    quality = settle_day_bars(store, [RELIANCE], WED, {}, StubSource(official), TRADING_DAYS)
    assert [g["day"] for g in quality.gaps] == ["2024-06-03", "2024-06-04"]
    assert sorted(_stored(store)) == [FRI, WED]


def test_an_ltpc_bar_is_never_stored_with_volume_zero(tmp_path: Path) -> None:
    ltpc = built_candle(WED, (2830.0, 2905.0, 2801.0, 2889.3, float("nan")))
    assert ltpc.volume is None
    store = _store(tmp_path, [OFFICIAL[MON], OFFICIAL[TUE]])
    without_source = settle_day_bars(store, [RELIANCE], WED, {"RELIANCE": ltpc}, None, TRADING_DAYS)
    assert WED not in _stored(store)  # held back rather than written with volume 0
    assert without_source.volume_less[0]["resolution"].startswith("held back")
    assert without_source.gaps == [{"symbol": "RELIANCE", "day": "2024-06-05", "reason": "volume-less bar held back"}]
    with_source = settle_day_bars(store, [RELIANCE], WED, {"RELIANCE": ltpc}, StubSource(), TRADING_DAYS)
    assert _stored(store)[WED][4] == 21_000_000  # the official candle gives the volume
    assert with_source.volume_less == [{"symbol": "RELIANCE", "day": "2024-06-05",
                                        "resolution": "volume from the official candle"}]
    assert [(r["field"], r["was"], r["now"]) for r in with_source.replaced] == [("volume", None, 21_000_000)]


def test_without_an_official_candle_the_built_bar_is_written_and_a_failure_is_reported(tmp_path: Path) -> None:
    store = _store(tmp_path, [OFFICIAL[MON], OFFICIAL[TUE]])
    quality = settle_day_bars(store, [RELIANCE], WED, {"RELIANCE": LATE_START}, StubSource(error="HTTP 503"),
                              TRADING_DAYS)
    assert _stored(store)[WED] == (2850.0, 2905.0, 2820.0, 2890.0, 19_000_000)
    assert quality.errors == ["HTTP 503"] and quality.written == 1 and quality.replaced == []


def test_the_report_round_trips_and_renders(tmp_path: Path) -> None:
    store = _store(tmp_path, [FRIDAY_BAR])
    quality = settle_day_bars(store, [RELIANCE], WED, {"RELIANCE": LATE_START}, StubSource({WED: OFFICIAL[WED]}),
                              TRADING_DAYS)
    saved = quality.as_dict()
    assert DayQuality.from_dict(saved) == quality
    assert saved["replaced_bars"] == 1 and len(saved["gaps"]) == 2
    markdown = quality.markdown()
    assert "| RELIANCE | 2024-06-05 | replaced | open: 2850.0 -> 2830.0 |" in markdown
    assert "| RELIANCE | 2024-06-03 | gap | no official candle |" in markdown
    assert {row["issue"] for row in quality.rows()} == {"replaced", "gap"}


def test_the_feeds_day_ohlc_corrects_a_late_start() -> None:
    # Ticks from 11:00 on: the bar built from them opened at 2850 and never saw the 2801 low of 10:05.
    tick = Tick(RELIANCE.instrument_key, 2889.3, 0, day_open=2830.0, day_high=2905.0, day_low=2801.0)
    assert with_exchange_ohlc(2850.0, 2900.0, 2820.0, tick) == (2830.0, 2905.0, 2801.0)
    assert with_exchange_ohlc(2850.0, 2900.0, 2820.0, Tick(RELIANCE.instrument_key, 2889.3, 0)) == (
        2850.0, 2900.0, 2820.0)  # an ltpc tick carries no day OHLC
    assert with_exchange_ohlc(2850.0, 2900.0, 2820.0, None) == (2850.0, 2900.0, 2820.0)


@pytest.mark.parametrize("stamp", ["2024-06-05T00:00:00+05:30", "2024-06-05T00:00:00+0530",
                                   datetime.combine(WED, time(), IST)])
def test_broker_rows_parse_in_either_timestamp_form(stamp: object) -> None:
    rows = [[stamp, 2830.0, 2905.0, 2801.0, 2889.3, 21_000_000, 0], ["bad-date", 1, 1, 1, 1, 1, 0],
            ["2024-06-04T00:00:00+05:30", 10.0, 9.0, 11.0, 10.0, 5, 0]]  # high below low: skipped
    assert parse_day_candles(rows) == [OFFICIAL[WED]]


def test_a_refused_token_is_asked_once_not_once_per_instrument(tmp_path: Path) -> None:
    store = _store(tmp_path, [OFFICIAL[MON], OFFICIAL[TUE]])
    tcs = Instrument("NSE_EQ|INE467B01029", "TCS", "INE467B01029")
    source = StubSource(error="HTTP 401 Unauthorized", error_class=DayBarTokenRejectedError)
    quality = settle_day_bars(store, [RELIANCE, tcs], WED, {"RELIANCE": LATE_START}, source, TRADING_DAYS)
    assert [symbol for symbol, _, _ in source.asked] == ["RELIANCE"]
    assert quality.errors == ["HTTP 401 Unauthorized"]
    assert quality.gaps == [{"symbol": "TCS", "day": "2024-06-05", "reason": "official candles not read: HTTP 401 "
                                                                            "Unauthorized"}]
    assert _stored(store)[WED] == (2850.0, 2905.0, 2820.0, 2890.0, 19_000_000)  # the built bar stands
