"""Backtests on 5-minute bars (the entry windows at their real times, GTT exits on the 5-minute path)
and over a recorded frame file, with the shipped data (June 2024; 2023-07 .. 2024-06 for 15 symbols)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.backtest import BacktestError, BacktestReport, run_backtest
from engine.feed.decoder import encode_market_info, encode_ticks
from engine.feed.framefile import write_frames
from engine.feed.synth import day_ticks
from engine.models import IST, MarketStatus, Tick
from engine.settings import Settings, load_settings
from engine.storage import BarStore
from tests.conftest import PROJECT_ROOT
from tests.engine.strategy.support import AlwaysLong

DATA = PROJECT_ROOT / "data"
pytestmark = pytest.mark.skipif(not (DATA / "instruments.parquet").exists(), reason="shipped data not built")
SYMBOLS = ["RELIANCE", "TCS", "INFY"]
DAY = date(2024, 6, 4)  # election-result day: a 5 % fall and back, GTTs fire
BARS = BarStore(DATA / "bars")


def _settings(**risk: Any) -> Settings:
    """A morning window (the daily path would enter at 15:10:30 whatever the window) and tight brackets."""
    return load_settings(entry_windows=["10:00-10:30"], strategy={"validator": {"conditions": []}},
                         risk={"stop_method": "atr", "atr_multiple": 0.5, "min_stop_atr": 0.0, "reward_risk": 1.0,
                               **risk})


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(IST)


def _five_minute_bar(symbol: str, moment: datetime) -> dict[str, Any]:
    start = moment.replace(minute=moment.minute - moment.minute % 5, second=0, microsecond=0)
    frame = BARS.read(symbol, "5min", start, start + timedelta(minutes=5))
    assert len(frame) == 1
    return dict(frame.iloc[0])


async def test_entries_fill_inside_the_window_at_its_real_times_and_gtts_fire_on_the_5min_path() -> None:
    report = await run_backtest(_settings(), date(2024, 6, 3), DAY, SYMBOLS, strategy=AlwaysLong(), timeframe="5min")
    data = report.as_dict()
    assert data["timeframe"] == "5min" and data["trading_days"] == 2
    assert data["trades"], "tight brackets on 2 volatile days close some trades"
    for trade in data["trades"]:
        entered, exited = _when(trade["entry_time"]), _when(trade["exit_time"])
        # the window is executed at 10:00, 10:01, ...; the entry fills on the next derived tick
        assert time(10, 0) <= entered.time() < time(10, 31), trade
        entry_bar = _five_minute_bar(trade["symbol"], entered)
        assert entry_bar["low"] <= trade["entry_price"] <= entry_bar["high"] * 1.0006
        assert trade["exit_reason"] in ("stop (GTT)", "target (GTT)"), trade
        exit_bar = _five_minute_bar(trade["symbol"], exited)  # the leg fired inside a real 5-minute bar
        if trade["exit_reason"] == "stop (GTT)":
            assert trade["exit_price"] < trade["entry_price"] and exit_bar["low"] <= trade["exit_price"] * 1.006
        else:
            assert trade["exit_price"] > trade["entry_price"] and exit_bar["high"] >= trade["exit_price"]
    intraday_exits = [t for t in data["trades"] if _when(t["exit_time"]).date() == _when(t["entry_time"]).date()]
    assert intraday_exits, "a bracket of 0.5 ATR is hit the same day on the 5-minute path"


async def test_a_year_of_5_minute_bars_gives_trades_in_2023() -> None:
    """RELIANCE, HDFCBANK and TATASTEEL have 5-minute bars from 2023-07-03; 2023-07-20 is RELIANCE's
    special session for the Jio Financial demerger (its bars start at 10:00)."""
    start, end = date(2023, 7, 19), date(2023, 7, 21)
    symbols = ["RELIANCE", "HDFCBANK", "TATASTEEL"]
    report = await run_backtest(_settings(), start, end, symbols, strategy=AlwaysLong(), timeframe="5min")
    data = report.as_dict()
    assert data["trading_days"] == 3 and data["trades"]
    for trade in data["trades"]:
        entered = _when(trade["entry_time"])
        assert start <= entered.date() <= end and time(10, 0) <= entered.time() < time(10, 31), trade
        entry_bar = _five_minute_bar(trade["symbol"], entered)
        assert entry_bar["low"] <= trade["entry_price"] <= entry_bar["high"] * 1.0006
    demerger_day = [t for t in data["trades"]
                    if t["symbol"] == "RELIANCE" and _when(t["entry_time"]).date() == date(2023, 7, 20)]
    assert demerger_day, "the 10:00 start of RELIANCE's special session still falls in the 10:00-10:30 window"


async def test_days_without_5_minute_bars_and_unknown_timeframes_are_refused() -> None:
    """The error names the days, the symbols lacking them and each symbol's 5-minute span (a year for 15
    symbols, June 2024 for the rest)."""
    with pytest.raises(BacktestError, match=r"no 5-minute bars on 2024-05-27, 2024-05-28, 2024-05-29 and 2 more "
                                            r"for WIPRO \(the 5-minute bars cover 2023-07-03 \.\. 2024-06-28 for "
                                            r"RELIANCE; 2024-06-03 \.\. 2024-06-28 for WIPRO\)"):
        await run_backtest(load_settings(), date(2024, 5, 27), date(2024, 6, 4), ["RELIANCE", "WIPRO"],
                           timeframe="5min")
    with pytest.raises(BacktestError, match=r"no 5-minute bars on 2023-06-26, 2023-06-27, 2023-06-28 and 1 more "
                                            r"for INFY, RELIANCE, TCS \(the 5-minute bars cover 2023-07-03"):
        await run_backtest(load_settings(), date(2023, 6, 26), date(2023, 7, 4), SYMBOLS, timeframe="5min")
    with pytest.raises(BacktestError, match="'1h' is not supported: use 1d or 5min"):
        await run_backtest(load_settings(), DAY, DAY, SYMBOLS, timeframe="1h")


def _record_day(path: Path, symbols: list[str]) -> None:
    """The frames the replay server would send for `DAY` (one per tick time, NSE_EQ status at the open
    and the close), as the recorder writes them: at their receive times."""
    from engine.data.instruments import load_instrument_table

    table = load_instrument_table(DATA).set_index("symbol")
    by_ms: dict[int, list[Tick]] = {}
    for symbol in symbols:
        key, tick_size = str(table.loc[symbol, "instrument_key"]), float(table.loc[symbol, "tick_size"])
        previous_close = float(BARS.read(symbol, "1d", end=DAY).iloc[-1]["close"])
        for tick in day_ticks(key, BARS.read_bars(symbol, "5min", DAY, DAY + timedelta(days=1)),
                              close_prev=previous_close, tick_size=tick_size):
            by_ms.setdefault(tick.ltt_ms, []).append(tick)
    midnight_ms = int(datetime.combine(DAY, time(), IST).timestamp() * 1000)
    frames: dict[int, list[bytes]] = {}
    for at, status in ((time(9, 15), MarketStatus.NORMAL_OPEN), (time(15, 30), MarketStatus.NORMAL_CLOSE)):
        ms = int(datetime.combine(DAY, at, IST).timestamp() * 1000)
        frames.setdefault(ms, []).append(encode_market_info({"NSE_EQ": status}, current_ts_ms=ms))
    for ms, ticks in by_ms.items():
        frames.setdefault(ms, []).append(encode_ticks(ticks, current_ts_ms=ms, day_start_ms=midnight_ms))
    with write_frames(path) as out:
        for ms in sorted(frames):
            for frame in frames[ms]:
                out.write(ms, frame)


def _trades(report: BacktestReport) -> list[tuple[Any, ...]]:
    return [(t["symbol"], t["quantity"], t["entry_time"], t["entry_price"], t["exit_time"], t["exit_price"])
            for t in report.trades]


async def test_recorded_frames_run_through_the_same_path_as_the_5_minute_bars(tmp_path: Path) -> None:
    frames = tmp_path / "day.frames"
    _record_day(frames, SYMBOLS)
    settings = _settings()
    replayed = await run_backtest(settings, None, None, SYMBOLS, strategy=AlwaysLong(), frames=frames)
    derived = await run_backtest(settings, DAY, DAY, SYMBOLS, strategy=AlwaysLong(), timeframe="5min")
    assert replayed.timeframe == "frames" and (replayed.start, replayed.end) == (DAY, DAY)
    assert replayed.days[0].entries == derived.days[0].entries >= 1
    assert _trades(replayed) and _trades(replayed) == _trades(derived)
    assert replayed.equity == derived.equity


async def test_a_file_that_is_not_a_frame_file_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.frames"
    bogus.write_bytes(b"not frames at all")
    with pytest.raises(BacktestError, match=r"--frames .*bogus\.frames"):
        await run_backtest(load_settings(), None, None, SYMBOLS, frames=bogus)
    with pytest.raises(BacktestError, match="--from and --to are needed"):
        await run_backtest(load_settings(), None, DAY, SYMBOLS)
