"""Post-close on a replayed day (a small copy of the shipped data): the official candles come from the replay
server's daily route through the Upstox SDK, missed days are filled, the built bar is replaced and reported, an ltpc
session never writes volume 0, and the quality report is saved for the artifact."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from engine.clock import LiveClock
from engine.models import Timeframe
from engine.session import day as day_work
from engine.session.stages import TradingDayContext, open_trading_day
from engine.storage import BarStore
from tests.conftest import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "data"
SYMBOLS = ("RELIANCE", "TCS")


def _copy(data_dir: Path, daily: list[tuple[date, date]]) -> None:
    """The instrument table, June's 5-minute bars and the daily bars of the given [start, end) spans."""
    data_dir.mkdir()
    shutil.copy(SHIPPED / "instruments.parquet", data_dir / "instruments.parquet")
    shipped, store = BarStore(SHIPPED / "bars"), BarStore(data_dir / "bars")
    for symbol in SYMBOLS:
        for start, end in daily:
            store.write(symbol, Timeframe.DAY, shipped.read(symbol, Timeframe.DAY, start=start, end=end))
        store.write(symbol, Timeframe.MIN5, shipped.read(symbol, Timeframe.MIN5), merge=False)


def _context(tmp_path: Path, day: str, **overrides: object) -> TradingDayContext:
    context = open_trading_day(day, LiveClock(), database_url=f"sqlite:///{tmp_path / 'day.db'}",
                               data_dir=tmp_path / "data", **overrides)
    day_work.refresh_universe(context)
    return context


def _days(tmp_path: Path, symbol: str) -> list[date]:
    return [b.ts.date() for b in BarStore(tmp_path / "data" / "bars").read_bars(symbol, Timeframe.DAY,
                                                                                start=date(2024, 5, 31))]


def test_missed_days_are_filled_and_the_built_bar_is_replaced_by_the_official_close(tmp_path: Path) -> None:
    # Daily history stops on Friday 31 May, and the shipped official bar of Wednesday 5 June is there (the NSE close
    # is a VWAP, not the last 5-minute close the day's bars give).
    _copy(tmp_path / "data", [(date(2024, 5, 1), date(2024, 6, 1)), (date(2024, 6, 5), date(2024, 6, 6))])
    context = _context(tmp_path, "2024-06-05")
    assert day_work.append_daily_bars(context) == 4  # Monday and Tuesday for each symbol
    assert _days(tmp_path, "RELIANCE") == [date(2024, 5, 31), date(2024, 6, 3), date(2024, 6, 4), date(2024, 6, 5)]
    quality = day_work.day_bars_quality(context)
    assert quality.source == "replay server (shipped data)" and quality.errors == []
    assert {(f["symbol"], f["day"]) for f in quality.filled} == {
        (s, d) for s in SYMBOLS for d in ("2024-06-03", "2024-06-04")}
    replaced = {(r["symbol"], r["field"]) for r in quality.replaced}
    assert ("RELIANCE", "close") in replaced  # the official close differs from the last 5-minute close
    official = BarStore(SHIPPED / "bars").read_bars("RELIANCE", Timeframe.DAY, start=date(2024, 6, 5),
                                                     end=date(2024, 6, 6))[0]
    close_change = next(r for r in quality.replaced if (r["symbol"], r["field"]) == ("RELIANCE", "close"))
    assert close_change["now"] == official.close != close_change["was"]
    assert day_work.append_daily_bars(context) == 0  # a re-run finds every bar settled


def test_an_ltpc_session_bar_is_held_back_not_stored_with_volume_zero(tmp_path: Path) -> None:
    _copy(tmp_path / "data", [(date(2024, 6, 1), date(2024, 7, 1))])  # no bars at all of 1 July
    context = _context(tmp_path, "2024-07-01", feed={"mode": "ltpc"})
    day_work.save_session_bars(context, {"RELIANCE": (3100.0, 3150.5, 3080.0, 3140.25, 0.0)})
    assert day_work.append_daily_bars(context) == 0
    assert date(2024, 7, 1) not in _days(tmp_path, "RELIANCE")
    quality = day_work.day_bars_quality(context)
    assert [(v["symbol"], v["resolution"]) for v in quality.volume_less] == [
        ("RELIANCE", "held back (no official candle to give its volume)")]
    assert {"symbol": "RELIANCE", "day": "2024-07-01", "reason": "volume-less bar held back"} in quality.gaps


def test_a_full_feed_session_bar_is_stored_when_no_official_candle_exists(tmp_path: Path) -> None:
    _copy(tmp_path / "data", [(date(2024, 6, 1), date(2024, 7, 1))])
    context = _context(tmp_path, "2024-07-01", feed={"mode": "full"})
    day_work.save_session_bars(context, {"RELIANCE": (3100.0, 3150.5, 3080.0, 3140.25, 1_234_567.0)})
    assert day_work.append_daily_bars(context) == 1
    (bar,) = BarStore(tmp_path / "data" / "bars").read_bars("RELIANCE", Timeframe.DAY, start=date(2024, 7, 1))
    assert (bar.open, bar.close, bar.volume) == (3100.0, 3140.25, 1_234_567)
    assert "RELIANCE" not in {g["symbol"] for g in day_work.day_bars_quality(context).gaps}
