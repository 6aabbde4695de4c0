"""The replay server's daily candle route, driven by the real upstox-python-sdk (`HistoryV3Api`) through
`engine.data.daybars.UpstoxDayBars`, and its raw answer shape."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from engine.clock import SteppedClock
from engine.data.daybars import DayBarError, DayCandle, UpstoxDayBars
from engine.feed.replay import ReplayServer
from engine.models import IST, Instrument
from engine.storage.bars import BarStore
from tests.engine.feed.conftest import PREVIOUS_DAY, REPLAY_DAY, REPLAY_KEYS, REPLAY_SYMBOLS, write_replay_fixture

EARLIER_DAY = date(2024, 5, 31)
ALPHA = Instrument(REPLAY_KEYS[0], REPLAY_SYMBOLS[0], REPLAY_KEYS[0].split("|")[1])


def _daily(day: date, open_: float, high: float, low: float, close: float, volume: int) -> pd.DataFrame:
    return pd.DataFrame([(datetime.combine(day, time(), IST), open_, high, low, close, volume)],
                        columns=["ts", "open", "high", "low", "close", "volume"])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The feed fixture's 5-minute bars plus daily bars of two days before the replayed day (none of the day)."""
    write_replay_fixture(tmp_path)
    store = BarStore(tmp_path / "bars")
    store.write("ALPHA", "1d", _daily(EARLIER_DAY, 98.0, 101.0, 97.5, 100.5, 1_000))
    store.write("ALPHA", "1d", _daily(PREVIOUS_DAY, 100.5, 104.0, 99.0, 103.0, 2_000))
    return tmp_path


async def _server(data_dir: Path, at: time) -> ReplayServer:
    server = ReplayServer(data_dir=data_dir, day=REPLAY_DAY, clock=SteppedClock(datetime.combine(REPLAY_DAY, at, IST)),
                          preload=False, host="127.0.0.1", port=0)
    await server.start()
    return server


async def _fetch(server: ReplayServer, instrument: Instrument, start: date, end: date) -> list[DayCandle]:
    source = UpstoxDayBars(server.api_url, lambda: "replay-token", timeout_seconds=5.0)
    return await asyncio.to_thread(source.fetch, instrument, start, end)


async def test_before_the_close_only_earlier_days_are_served(data_dir: Path) -> None:
    server = await _server(data_dir, time(14, 0))
    try:
        candles = await _fetch(server, ALPHA, EARLIER_DAY, REPLAY_DAY)
    finally:
        await server.stop()
    assert candles == [DayCandle(EARLIER_DAY, 98.0, 101.0, 97.5, 100.5, 1_000),
                       DayCandle(PREVIOUS_DAY, 100.5, 104.0, 99.0, 103.0, 2_000)]


async def test_after_the_close_the_replayed_day_is_its_5_minute_bars_aggregated(data_dir: Path) -> None:
    bars = BarStore(data_dir / "bars").read("ALPHA", "5min", REPLAY_DAY, date(2024, 6, 5))
    server = await _server(data_dir, time(15, 45))
    try:
        candles = await _fetch(server, ALPHA, REPLAY_DAY, REPLAY_DAY)
    finally:
        await server.stop()
    assert candles == [DayCandle(REPLAY_DAY, float(bars["open"].iloc[0]), float(bars["high"].max()),
                                 float(bars["low"].min()), float(bars["close"].iloc[-1]), int(bars["volume"].sum()))]


async def test_a_past_day_without_a_daily_bar_is_its_5_minute_bars_aggregated(data_dir: Path) -> None:
    beta = Instrument(REPLAY_KEYS[1], REPLAY_SYMBOLS[1], REPLAY_KEYS[1].split("|")[1])  # 5-minute bars only
    bars = BarStore(data_dir / "bars").read("BETA", "5min", PREVIOUS_DAY, REPLAY_DAY)
    server = await _server(data_dir, time(10, 0))
    try:
        candles = await _fetch(server, beta, EARLIER_DAY, REPLAY_DAY)
    finally:
        await server.stop()
    assert candles == [DayCandle(PREVIOUS_DAY, float(bars["open"].iloc[0]), float(bars["high"].max()),
                                 float(bars["low"].min()), float(bars["close"].iloc[-1]), int(bars["volume"].sum()))]


async def test_a_stored_daily_bar_of_the_replayed_day_is_the_official_candle(data_dir: Path) -> None:
    BarStore(data_dir / "bars").write("ALPHA", "1d", _daily(REPLAY_DAY, 103.0, 110.0, 101.0, 108.4, 9_999))
    server = await _server(data_dir, time(15, 45))
    try:
        candles = await _fetch(server, ALPHA, PREVIOUS_DAY, date(2024, 6, 10))  # later days are never served
    finally:
        await server.stop()
    assert [c.day for c in candles] == [PREVIOUS_DAY, REPLAY_DAY]
    assert candles[-1] == DayCandle(REPLAY_DAY, 103.0, 110.0, 101.0, 108.4, 9_999)


async def test_raw_answer_is_upstox_shaped_newest_first(data_dir: Path) -> None:
    server = await _server(data_dir, time(15, 45))
    try:
        async with httpx.AsyncClient(base_url=server.api_url) as http:
            ok = await http.get(f"/v3/historical-candle/{REPLAY_KEYS[0]}/days/1/2024-06-04/2024-05-01")
            bad_unit = await http.get(f"/v3/historical-candle/{REPLAY_KEYS[0]}/minutes/1/2024-06-04/2024-05-01")
            bad_range = await http.get(f"/v3/historical-candle/{REPLAY_KEYS[0]}/days/1/2024-06-01/2024-06-04")
    finally:
        await server.stop()
    body = ok.json()
    assert ok.status_code == 200 and body["status"] == "success"
    rows = body["data"]["candles"]
    assert [row[0] for row in rows] == ["2024-06-04T00:00:00+05:30", "2024-06-03T00:00:00+05:30",
                                        "2024-05-31T00:00:00+05:30"]
    assert rows[1] == ["2024-06-03T00:00:00+05:30", 100.5, 104.0, 99.0, 103.0, 2000, 0]
    assert bad_unit.status_code == 400 and bad_unit.json()["errors"][0]["errorCode"] == "UDAPI1146"
    assert bad_range.status_code == 400 and bad_range.json()["errors"][0]["errorCode"] == "UDAPI1022"


async def test_an_unknown_instrument_is_a_day_bar_error(data_dir: Path) -> None:
    server = await _server(data_dir, time(15, 45))
    try:
        with pytest.raises(DayBarError, match="HTTP 400"):
            await _fetch(server, Instrument("NSE_EQ|INE999Z01019", "NOPE", "INE999Z01019"), PREVIOUS_DAY, REPLAY_DAY)
    finally:
        await server.stop()
