"""The Kite sandbox's historical-candle route (day interval), driven by kiteconnect's `historical_data` through
`engine.data.daybars.KiteDayBars`; the raw shape matches Kite's published `historical_*.json` mocks."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date

import httpx
import pytest

from engine.brokers.zerodha.sandbox import Fault, KiteSandbox
from engine.data.daybars import DayBarError, DayBarTokenRejectedError, DayCandle, KiteDayBars
from engine.models import Instrument
from tests.engine.brokers.zerodha.kite_mocks import RESOURCES

CANDLES = [DayCandle(date(2024, 6, 3), 2960.0, 3020.5, 2901.25, 3002.1, 18_000_000),
           DayCandle(date(2024, 6, 4), 3002.0, 3010.0, 2740.0, 2830.9, 35_500_000),
           DayCandle(date(2024, 6, 5), 2830.0, 2905.0, 2801.0, 2889.3, 21_000_000)]


def _headers(sandbox: KiteSandbox) -> dict[str, str]:
    return {"X-Kite-Version": "3", "Authorization": f"token {sandbox.api_key}:{sandbox.access_token}"}


def test_daily_candles_of_a_range_through_kiteconnect(sandbox: KiteSandbox, instrument: Instrument) -> None:
    sandbox.history.put(instrument.kite_token or 0, CANDLES)
    source = KiteDayBars(sandbox.config(timeout=2.0))
    assert source.fetch(instrument, date(2024, 6, 4), date(2024, 6, 5)) == CANDLES[1:]
    assert source.fetch(instrument, date(2024, 6, 1), date(2024, 6, 2)) == []


def test_the_raw_answer_has_kites_shape(sandbox: KiteSandbox, instrument: Instrument) -> None:
    sandbox.history.put(instrument.kite_token or 0, CANDLES)
    answer = httpx.get(f"{sandbox.url}/instruments/historical/{instrument.kite_token}/day",
                       params={"from": "2024-06-03 00:00:00", "to": "2024-06-04 23:59:59", "oi": "1"},
                       headers=_headers(sandbox))
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success"
    assert body["data"]["candles"] == [["2024-06-03T00:00:00+0530", 2960.0, 3020.5, 2901.25, 3002.1, 18_000_000, 0],
                                       ["2024-06-04T00:00:00+0530", 3002.0, 3010.0, 2740.0, 2830.9, 35_500_000, 0]]
    published = json.loads((RESOURCES / "historical_oi.json").read_text())  # Kite's own answer
    assert set(published) == set(body) and set(published["data"]) == set(body["data"])
    for row in (body["data"]["candles"][0], published["data"]["candles"][0]):  # [ts, o, h, l, c, volume, oi]
        assert len(row) == 7 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0530", row[0])
        assert all(isinstance(value, int | float) for value in row[1:]) and isinstance(row[5], int)


@pytest.mark.parametrize(("interval", "params", "message"), [
    ("5minute", {"from": "2024-06-03", "to": "2024-06-04"}, "day interval only"),
    ("weekly", {"from": "2024-06-03", "to": "2024-06-04"}, "invalid interval"),
    ("day", {"from": "2024-06-05", "to": "2024-06-04"}, "after"),
    ("day", {"from": "03-06-2024", "to": "2024-06-04"}, "invalid `from`"),
])
def test_bad_requests_are_input_exceptions(sandbox: KiteSandbox, instrument: Instrument, interval: str,
                                           params: dict[str, str], message: str) -> None:
    sandbox.history.put(instrument.kite_token or 0, CANDLES)
    answer = httpx.get(f"{sandbox.url}/instruments/historical/{instrument.kite_token}/{interval}", params=params,
                       headers=_headers(sandbox))
    assert answer.status_code == 400
    assert answer.json()["error_type"] == "InputException" and message in answer.json()["message"]


def test_an_instrument_without_a_kite_token_is_a_day_bar_error(sandbox: KiteSandbox, instrument: Instrument) -> None:
    with pytest.raises(DayBarError, match="no Kite instrument_token"):
        KiteDayBars(sandbox.config()).fetch(dataclasses.replace(instrument, kite_token=None), date(2024, 6, 3),
                                            date(2024, 6, 4))


def test_an_unknown_token_is_a_day_bar_error(sandbox: KiteSandbox, instrument: Instrument) -> None:
    with pytest.raises(DayBarError, match="invalid token"):
        KiteDayBars(sandbox.config(timeout=2.0)).fetch(instrument, date(2024, 6, 3), date(2024, 6, 4))


def test_a_refused_token_is_a_token_rejected_error(sandbox: KiteSandbox, instrument: Instrument) -> None:
    sandbox.history.put(instrument.kite_token or 0, CANDLES)
    sandbox.inject(Fault.TOKEN, route="*")
    with pytest.raises(DayBarTokenRejectedError, match="TokenExpired"):
        KiteDayBars(sandbox.config(timeout=2.0)).fetch(instrument, date(2024, 6, 3), date(2024, 6, 4))
