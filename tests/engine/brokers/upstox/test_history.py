"""The Upstox sandbox's historical-candle routes, driven by upstox-python-sdk (`HistoryV3Api`): daily candles through
`engine.data.daybars.UpstoxDayBars`, intraday candles through the feed's backfill source `UpstoxIntradayCandles`."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import httpx
import pytest

from engine.brokers.upstox.sandbox import UpstoxSandbox
from engine.clock import SteppedClock
from engine.data.daybars import DayBarTokenRejectedError, DayCandle, UpstoxDayBars
from engine.feed.backfill import Candle, UpstoxIntradayCandles
from engine.models import IST, Instrument
from tests.engine.brokers.upstox.conftest import TOKEN

CANDLES = [DayCandle(date(2024, 6, 3), 2960.0, 3020.5, 2901.25, 3002.1, 18_000_000),
           DayCandle(date(2024, 6, 4), 3002.0, 3010.0, 2740.0, 2830.9, 35_500_000),
           DayCandle(date(2024, 6, 5), 2830.0, 2905.0, 2801.0, 2889.3, 21_000_000)]


def source(sandbox: UpstoxSandbox, token: str = TOKEN) -> UpstoxDayBars:
    return UpstoxDayBars(sandbox.url, lambda: token, timeout_seconds=2.0)


def test_daily_candles_of_a_range_come_back_oldest_first(sandbox: UpstoxSandbox, instrument: Instrument) -> None:
    sandbox.history.put(instrument.instrument_key, CANDLES)
    assert source(sandbox).fetch(instrument, date(2024, 6, 4), date(2024, 6, 5)) == CANDLES[1:]
    assert source(sandbox).fetch(instrument, date(2024, 6, 6), date(2024, 6, 7)) == []


def test_the_raw_answer_is_upstox_shaped(sandbox: UpstoxSandbox, instrument: Instrument) -> None:
    sandbox.history.put(instrument.instrument_key, CANDLES)
    answer = httpx.get(f"{sandbox.url}/v3/historical-candle/{instrument.instrument_key}/days/1/2024-06-05/2024-06-03",
                       headers={"Authorization": f"Bearer {TOKEN}"})
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success"
    assert body["data"]["candles"][0] == ["2024-06-05T00:00:00+05:30", 2830.0, 2905.0, 2801.0, 2889.3, 21_000_000, 0]
    assert [row[0][:10] for row in body["data"]["candles"]] == ["2024-06-05", "2024-06-04", "2024-06-03"]


@pytest.mark.parametrize(("path", "code"), [
    ("NSE_EQ|INE002A01018/minutes/1/2024-06-05/2024-06-03", "UDAPI1146"),
    ("NSE_EQ|INE002A01018/days/1/2024-06-03/2024-06-05", "UDAPI1022"),
    ("NSE_EQ|INE002A01018/days/1/2024-13-03/2024-06-05", "UDAPI1022"),
    ("NSE_EQ|INE000000000/days/1/2024-06-05/2024-06-03", "UDAPI1021"),
])
def test_bad_requests_are_refused_with_upstox_codes(sandbox: UpstoxSandbox, instrument: Instrument, path: str,
                                                    code: str) -> None:
    sandbox.history.put(instrument.instrument_key, CANDLES)
    answer = httpx.get(f"{sandbox.url}/v3/historical-candle/{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["errorCode"] == code


def test_a_refused_token_is_a_day_bar_error_without_the_token(sandbox: UpstoxSandbox, instrument: Instrument) -> None:
    sandbox.history.put(instrument.instrument_key, CANDLES)
    with pytest.raises(DayBarTokenRejectedError, match="HTTP 401") as raised:
        source(sandbox, token="stale-token-value").fetch(instrument, date(2024, 6, 3), date(2024, 6, 5))
    assert "stale-token-value" not in str(raised.value)


def _minutes(key: str, first: datetime, count: int) -> list[Candle]:
    return [Candle(key, first + timedelta(minutes=i), 3000.0 + i, 3001.0 + i, 2999.0 + i, 3000.5 + i, 100 * (i + 1))
            for i in range(count)]


async def test_intraday_candles_complete_at_the_sandbox_clock_through_the_backfill_source(
    sandbox: UpstoxSandbox, clock: SteppedClock, instrument: Instrument
) -> None:
    key = instrument.instrument_key
    yesterday = _minutes(key, datetime.combine(date(2024, 6, 3), time(15, 20), IST), 3)
    today = _minutes(key, datetime.combine(date(2024, 6, 4), time(9, 57), IST), 5)  # 09:57 .. 10:01
    sandbox.history.put_intraday(yesterday + today)
    assert clock.now() == datetime.combine(date(2024, 6, 4), time(10, 0), IST)
    fetched = await UpstoxIntradayCandles(sandbox.url, lambda: TOKEN).fetch([key])
    assert fetched == {key: today[:3]}  # 09:57, 09:58, 09:59: complete at 10:00; yesterday's never


def test_an_intraday_interval_upstox_does_not_serve_is_refused(sandbox: UpstoxSandbox, instrument: Instrument) -> None:
    sandbox.history.put_intraday(_minutes(instrument.instrument_key, datetime.combine(date(2024, 6, 4), time(9, 15),
                                                                                      IST), 2))
    answer = httpx.get(f"{sandbox.url}/v3/historical-candle/intraday/{instrument.instrument_key}/minutes/301",
                       headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 400 and answer.json()["errors"][0]["errorCode"] == "UDAPI1146"
