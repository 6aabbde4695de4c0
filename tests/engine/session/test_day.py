"""Pre-open and post-close work on a small copy of the shipped data (the shipped files are never
written by tests)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from engine.clock import LiveClock
from engine.models import Timeframe
from engine.session import day as day_work
from engine.session.stages import TradingDayContext, open_trading_day
from engine.storage import BarStore
from tests.conftest import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "data"
SYMBOLS = ("RELIANCE", "TCS")


def _copy_data(target: Path, daily_until: date) -> None:
    shutil.copy(SHIPPED / "instruments.parquet", target / "instruments.parquet")
    shipped, store = BarStore(SHIPPED / "bars"), BarStore(target / "bars")
    for symbol in SYMBOLS:
        store.write(symbol, Timeframe.DAY, shipped.read(symbol, Timeframe.DAY, end=daily_until), merge=False)
        store.write(symbol, Timeframe.MIN5, shipped.read(symbol, Timeframe.MIN5), merge=False)


def _context(tmp_path: Path, day: str) -> TradingDayContext:
    context = open_trading_day(day, LiveClock(), database_url=f"sqlite:///{tmp_path / 'day.db'}",
                               data_dir=tmp_path / "data")
    day_work.refresh_instrument_master(context)
    assert set(SYMBOLS) <= set(day_work.refresh_universe(context))
    return context


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def test_post_close_appends_the_days_bar_from_its_5_minute_bars_once(tmp_path: Path, data_dir: Path) -> None:
    _copy_data(data_dir, daily_until=date(2024, 6, 4))
    context = _context(tmp_path, "2024-06-04")
    assert day_work.append_daily_bars(context) == len(SYMBOLS)
    assert day_work.append_daily_bars(context) == 0  # append-only: a re-run changes nothing
    five = BarStore(data_dir / "bars").read("TCS", Timeframe.MIN5, start=date(2024, 6, 4), end=date(2024, 6, 5))
    (bar,) = BarStore(data_dir / "bars").read_bars("TCS", Timeframe.DAY, start=date(2024, 6, 4))
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        five["open"].iloc[0], five["high"].max(), five["low"].min(), five["close"].iloc[-1], five["volume"].sum()
    )


def test_post_close_falls_back_to_the_bars_the_live_session_built_from_ticks(tmp_path: Path, data_dir: Path) -> None:
    _copy_data(data_dir, daily_until=date(2024, 7, 1))  # no 5-minute bars exist for 2024-07-01
    context = _context(tmp_path, "2024-07-01")
    day_work.save_session_bars(context, {"RELIANCE": (3100.0, 3150.5, 3080.0, 3140.25, 1_234_567.0)})
    assert day_work.append_daily_bars(context) == 1
    frame = BarStore(data_dir / "bars").read("RELIANCE", Timeframe.DAY, start=date(2024, 7, 1))
    assert frame[["open", "high", "low", "close", "volume"]].iloc[0].tolist() == [
        3100.0, 3150.5, 3080.0, 3140.25, 1_234_567
    ]
    assert frame["ts"].iloc[0] == pd.Timestamp("2024-07-01", tz="Asia/Kolkata")


def test_pre_open_metadata_and_post_close_market_caps(tmp_path: Path, data_dir: Path) -> None:
    _copy_data(data_dir, daily_until=date(2024, 6, 5))
    context = _context(tmp_path, "2024-06-04")
    path = Path(day_work.build_metadata(context))
    assert path.exists() and path.parent == tmp_path / "metadata"
    assert day_work.refresh_market_caps_from_close(context) >= len(SYMBOLS)
    report = day_work.daily_report(context)
    assert set(report) == {"setups", "orders", "trades", "positions", "risk"}
