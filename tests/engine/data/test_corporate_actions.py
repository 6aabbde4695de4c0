"""Corporate actions on real events of the shipped data: RELIANCE's 1:1 bonus (ex 2024-10-28, factor 2) and
BAJFINANCE's 1:2 split + 4:1 bonus (ex 2025-06-16, factor 10). Stored history is the shipped one (June-2024
price basis); the broker's adjusted candles are the fixture in resources/corporate_actions/ (see its README)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlmodel import select

from engine.clock import SteppedClock
from engine.data.corporate_actions import (
    ActionContext,
    CorporateAction,
    CorporateActionError,
    compare_with_candles,
    factor_of,
    journaled,
    load_actions_file,
    run_corporate_actions,
)
from engine.data.daybars import DayCandle
from engine.data.instruments import load_instrument_table, load_instruments, sync_instruments
from engine.data.master import load_master_as_of
from engine.execution.manager import OrderManager
from engine.indicators.metadata import build_metadata
from engine.models import IST, Instrument, Timeframe
from engine.resources import shipped_data_dir
from engine.storage import BarStore, init_db, session_scope
from engine.storage.tables import InstrumentRow

RESOURCES = Path(__file__).parent / "resources" / "corporate_actions"
EVENTS = {"RELIANCE": (date(2024, 10, 28), 2.0), "BAJFINANCE": (date(2025, 6, 16), 10.0)}
SHIPPED_BARS = BarStore(shipped_data_dir() / "bars")


def midnight(day: date) -> pd.Timestamp:
    return pd.Timestamp(datetime.combine(day, time(), IST))


def adjusted(symbol: str) -> pd.DataFrame:
    """The broker's (split/bonus-adjusted) daily bars of the fixture, in the bar store's columns."""
    frame = pd.read_csv(RESOURCES / f"{symbol}_adjusted.csv")
    frame["ts"] = pd.to_datetime(frame.pop("date")).dt.tz_localize(IST).astype("datetime64[ns, Asia/Kolkata]")
    return frame[["ts", "open", "high", "low", "close", "volume"]]


def assert_adjusted(store: BarStore, symbol: str, end: date) -> pd.DataFrame:
    """The stored daily history before `end` equals the broker's adjusted series within rounding: prices to
    1e-12, volume to the factor (the shipped volume was divided by it and rounded to whole shares)."""
    expected = adjusted(symbol)
    expected = expected[expected["ts"] < midnight(end)].reset_index(drop=True)
    stored = store.read(symbol, "1d")
    pd.testing.assert_frame_equal(stored.drop(columns="volume"), expected.drop(columns="volume"), check_exact=False,
                                  rtol=1e-12)
    assert (stored["volume"] - expected["volume"]).abs().max() <= EVENTS[symbol][1]
    return expected


def stored_until(tmp_path: Path, symbol: str, end: date) -> BarStore:
    """A bar store holding the shipped daily history of `symbol` over the fixture's span, before `end`."""
    store = BarStore(tmp_path / "bars")
    start = adjusted(symbol)["ts"].iloc[0].date()
    store.write(symbol, "1d", SHIPPED_BARS.read(symbol, "1d", start=start, end=end), merge=False)
    return store


class FixtureCandles:
    """The broker's historical daily candles (a `DayBarSource`) from the fixture."""

    name = "fixture"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def fetch(self, instrument: Instrument, start: date, end: date) -> list[DayCandle]:
        self.asked.append(instrument.symbol)
        frame = adjusted(instrument.symbol)
        days = frame["ts"].dt.date
        frame = frame[(days >= start) & (days <= end)]
        return [DayCandle(ts.date(), o, h, lo, c, int(v)) for ts, o, h, lo, c, v in frame.itertuples(index=False)]


def context_for(tmp_path: Path, store: BarStore, day: date, orders: OrderManager | None = None) -> ActionContext:
    db = init_db(f"sqlite:///{tmp_path / 'db.sqlite'}")
    if not journaled(db) and not _has_instruments(db):
        sync_instruments(db, load_instrument_table(shipped_data_dir()))
    instruments = {i.symbol: i for i in load_instruments(shipped_data_dir())}
    return ActionContext(db, store, shipped_data_dir(), tmp_path / "work", day,
                         SteppedClock(datetime.combine(day, time(8, 30), IST)), instruments, orders)


def _has_instruments(db: Any) -> bool:
    with session_scope(db) as session:
        return session.exec(select(InstrumentRow)).first() is not None


def run(context: ActionContext, **kwargs: Any) -> Any:
    kwargs.setdefault("file_actions", [])
    kwargs.setdefault("candles", None)
    kwargs.setdefault("check_symbols", [])
    return asyncio.run(run_corporate_actions(context, **kwargs))


def wilder_atr(frame: pd.DataFrame, period: int = 14) -> float:
    """ATR as the engine defines it, in pandas: true range, seeded with the mean of the first `period`, then
    Wilder's smoothing (alpha 1/period)."""
    previous = frame["close"].shift()
    true_range = pd.concat([frame["high"] - frame["low"], (frame["high"] - previous).abs(),
                            (frame["low"] - previous).abs()], axis=1).max(axis=1)
    seeded = pd.concat([pd.Series([true_range.iloc[:period].mean()]), true_range.iloc[period:]], ignore_index=True)
    return float(seeded.ewm(alpha=1 / period, adjust=False).mean().iloc[-1])


# ---------------------------------------------------------------- the file


def test_ratio_gives_the_factor() -> None:
    assert factor_of("bonus", "1:1") == 2.0
    assert factor_of("split", "1:2") == 2.0
    assert factor_of("bonus", "4:1") == 5.0
    assert factor_of("bonus", "1:2") == 1.5
    with pytest.raises(CorporateActionError, match="'a:b'"):
        factor_of("split", "2")
    with pytest.raises(CorporateActionError, match="kind"):
        factor_of("merger", "1:1")


def test_the_file_in_toml_or_csv_merges_the_actions_of_one_day(tmp_path: Path) -> None:
    toml = tmp_path / "actions.toml"
    toml.write_text('[[action]]\nsymbol = "RELIANCE"\nex_date = 2024-10-28\nkind = "bonus"\nratio = "1:1"\n'
                    '[[action]]\nsymbol = "BAJFINANCE"\nex_date = "2025-06-16"\nkind = "split"\nratio = "1:2"\n'
                    '[[action]]\nsymbol = "BAJFINANCE"\nex_date = "2025-06-16"\nkind = "bonus"\nratio = "4:1"\n')
    csv = tmp_path / "actions.csv"
    csv.write_text("symbol,ex_date,kind,ratio\nRELIANCE,2024-10-28,bonus,1:1\nBAJFINANCE,2025-06-16,split,1:2\n"
                   "BAJFINANCE,2025-06-16,bonus,4:1\n")
    for path in (toml, csv):
        actions = load_actions_file(path)
        assert [(a.symbol, a.ex_date, a.factor, a.kind) for a in actions] == [
            ("RELIANCE", date(2024, 10, 28), 2.0, "bonus"), ("BAJFINANCE", date(2025, 6, 16), 10.0, "split+bonus")]
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,ex_date,kind,ratio\nRELIANCE,28-10-2024,bonus,1:1\n")
    with pytest.raises(CorporateActionError, match="action 1"):
        load_actions_file(bad)


# ---------------------------------------------------------------- the broker's candles


@pytest.mark.parametrize("symbol", sorted(EVENTS))
def test_candles_detect_the_action_at_the_pre_open_of_the_ex_date(tmp_path: Path, symbol: str) -> None:
    ex_date, factor = EVENTS[symbol]
    store = stored_until(tmp_path, symbol, ex_date)
    instrument = Instrument(f"NSE_EQ|{symbol}", symbol, "")
    candles = FixtureCandles().fetch(instrument, ex_date - timedelta(days=30), ex_date - timedelta(days=1))
    finding = compare_with_candles(symbol, store.read(symbol, "1d"), candles, ex_date)
    assert finding.overlap >= 15 and not finding.problem
    assert finding.action == CorporateAction(symbol, ex_date, factor, "adjustment", "candles")


@pytest.mark.parametrize("symbol", sorted(EVENTS))
def test_candles_find_the_ex_date_when_later_bars_came_from_the_broker(tmp_path: Path, symbol: str) -> None:
    """Detected days late: the bars settled since the ex-date are on the new basis already (ratio 1)."""
    ex_date, factor = EVENTS[symbol]
    store = stored_until(tmp_path, symbol, ex_date)
    later = adjusted(symbol)
    store.write(symbol, "1d", later[(later["ts"] >= midnight(ex_date))].head(3))
    day = store.read(symbol, "1d")["ts"].iloc[-1].date() + timedelta(days=1)
    instrument = Instrument(f"NSE_EQ|{symbol}", symbol, "")
    candles = FixtureCandles().fetch(instrument, day - timedelta(days=30), day - timedelta(days=1))
    finding = compare_with_candles(symbol, store.read(symbol, "1d"), candles, day)
    assert finding.action is not None and (finding.action.ex_date, finding.action.factor) == (ex_date, factor)


def test_candles_that_match_no_usual_ratio_are_reported_not_applied(tmp_path: Path) -> None:
    ex_date, _ = EVENTS["RELIANCE"]
    store = stored_until(tmp_path, "RELIANCE", ex_date)
    instrument = Instrument("NSE_EQ|RELIANCE", "RELIANCE", "")
    candles = [DayCandle(c.day, c.open, c.high, c.low, c.close * 1.37, c.volume)
               for c in FixtureCandles().fetch(instrument, ex_date - timedelta(days=30), ex_date)]
    finding = compare_with_candles("RELIANCE", store.read("RELIANCE", "1d"), candles, ex_date)
    assert finding.action is None and "no usual" in finding.problem


# ---------------------------------------------------------------- applying


@pytest.mark.parametrize("symbol", sorted(EVENTS))
def test_history_is_rebased_and_indicators_equal_pandas_on_the_adjusted_series(tmp_path: Path, symbol: str) -> None:
    ex_date, factor = EVENTS[symbol]
    store = stored_until(tmp_path, symbol, ex_date)
    context = context_for(tmp_path, store, ex_date)
    candles = FixtureCandles()
    report = run(context, candles=candles, check_symbols=[symbol])
    assert [(a["symbol"], a["factor"], a["status"]) for a in report.applied] == [(symbol, factor, "APPLIED")]

    expected = assert_adjusted(store, symbol, ex_date)
    rebased = store.read(symbol, "1d")

    asof = ex_date - timedelta(days=1)
    values = build_metadata(store, [symbol], asof).instruments[symbol].frame_values(Timeframe.DAY)
    assert values["sma_200"] == pytest.approx(expected["close"].rolling(200).mean().iloc[-1], rel=1e-9)
    assert values["atr_14"] == pytest.approx(wilder_atr(expected), rel=1e-9)
    assert values["lowest_low_20"] == pytest.approx(expected["low"].tail(20).min(), rel=1e-12)

    again = run(context, candles=candles, check_symbols=[symbol])  # the candles now agree: nothing to do
    assert again.applied == [] and again.warnings == []
    pd.testing.assert_frame_equal(store.read(symbol, "1d"), rebased)


def test_the_file_applies_once_and_market_caps_use_the_current_share_count(tmp_path: Path) -> None:
    ex_date, factor = EVENTS["RELIANCE"]
    store = stored_until(tmp_path, "RELIANCE", ex_date)
    context = context_for(tmp_path, store, ex_date)
    master = load_master_as_of(context.data_dir, context.work_dir, ex_date)
    shares = float(master.loc[master["symbol"] == "RELIANCE", "shares_outstanding"].iloc[0])
    cap_before = shares * float(store.read("RELIANCE", "1d")["close"].iloc[-1]) / 1e7
    action = CorporateAction("RELIANCE", ex_date, factor, "bonus", "file")
    future = CorporateAction("BAJFINANCE", date(2030, 1, 1), 2.0, "split", "file")

    report = run(context, file_actions=[action, future])
    assert [(a["symbol"], a["source"], a["status"]) for a in report.applied] == [("RELIANCE", "file", "APPLIED")]
    entry = report.applied[0]["rebased"]
    assert entry["done"] == ["bars", "shares", "positions", "gtts"]
    assert entry["bars"]["1d"]["rows"] == len(store.read("RELIANCE", "1d"))
    master = load_master_as_of(context.data_dir, context.work_dir, ex_date)
    new_shares = float(master.loc[master["symbol"] == "RELIANCE", "shares_outstanding"].iloc[0])
    assert new_shares == pytest.approx(shares * factor)
    with session_scope(context.db) as session:
        row = session.exec(select(InstrumentRow).where(InstrumentRow.symbol == "RELIANCE")).one()
        assert row.shares_outstanding == pytest.approx(shares * factor)
    cap_after = new_shares * float(store.read("RELIANCE", "1d")["close"].iloc[-1]) / 1e7
    assert cap_after == pytest.approx(cap_before, rel=1e-12)

    close = float(store.read("RELIANCE", "1d")["close"].iloc[-1])
    assert run(context, file_actions=[action]).applied == []  # journaled: never twice
    assert float(store.read("RELIANCE", "1d")["close"].iloc[-1]) == close
    rows = journaled(context.db)
    assert [(r.symbol, r.ex_date, r.factor, r.status) for r in rows] == [("RELIANCE", ex_date, factor, "APPLIED")]
    assert rows[0].applied_at is not None


def test_a_crash_mid_way_resumes_only_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ex_date, factor = EVENTS["BAJFINANCE"]
    store = stored_until(tmp_path, "BAJFINANCE", ex_date)
    context = context_for(tmp_path, store, ex_date)
    action = CorporateAction("BAJFINANCE", ex_date, factor, "split+bonus", "file")

    def crash(*_: Any) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr("engine.data.corporate_actions.rebase_open_positions", crash)
    with pytest.raises(RuntimeError, match="killed"):
        run(context, file_actions=[action])
    [row] = journaled(context.db)
    assert row.status == "PENDING"
    monkeypatch.undo()

    report = run(context, file_actions=[])  # the journal alone resumes it
    assert [(a["symbol"], a["status"]) for a in report.applied] == [("BAJFINANCE", "APPLIED")]
    assert_adjusted(store, "BAJFINANCE", ex_date)
    master = load_master_as_of(context.data_dir, context.work_dir, ex_date)
    shipped = load_instrument_table(shipped_data_dir())
    ratio = (master.loc[master["symbol"] == "BAJFINANCE", "shares_outstanding"].iloc[0]
             / shipped.loc[shipped["symbol"] == "BAJFINANCE", "shares_outstanding"].iloc[0])
    assert ratio == pytest.approx(factor)  # x10 once, not x100


def test_a_crash_after_the_bars_were_rewritten_does_not_divide_them_again(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ex_date, factor = EVENTS["RELIANCE"]
    store = stored_until(tmp_path, "RELIANCE", ex_date)
    context = context_for(tmp_path, store, ex_date)
    action = CorporateAction("RELIANCE", ex_date, factor, "bonus", "file")
    real_write = BarStore.write

    def write_then_crash(self: BarStore, *args: Any, **kwargs: Any) -> int:
        real_write(self, *args, **kwargs)
        raise RuntimeError("killed after the file was replaced")

    monkeypatch.setattr(BarStore, "write", write_then_crash)
    with pytest.raises(RuntimeError, match="killed"):
        run(context, file_actions=[action])
    monkeypatch.undo()
    run(context, file_actions=[action])
    assert_adjusted(store, "RELIANCE", ex_date)


def test_a_file_action_on_history_without_a_step_is_reported_not_applied(tmp_path: Path) -> None:
    """The shipped history keeps the June-2024 basis after the ex-date too: dividing only the rows before it
    would put a false step into it. Only the broker's candles can say which basis it is on."""
    ex_date, factor = EVENTS["RELIANCE"]
    store = stored_until(tmp_path, "RELIANCE", ex_date + timedelta(days=30))
    context = context_for(tmp_path, store, ex_date + timedelta(days=30))
    before = store.read("RELIANCE", "1d")
    report = run(context, file_actions=[CorporateAction("RELIANCE", ex_date, factor, "bonus", "file")])
    assert report.applied == [] and "shows no step of 2" in report.warnings[0]
    pd.testing.assert_frame_equal(store.read("RELIANCE", "1d"), before)
    candles = run(context, candles=FixtureCandles(), check_symbols=["RELIANCE"])  # the candles can
    assert [(a["factor"], a["source"]) for a in candles.applied] == [(factor, "candles")]
    assert_adjusted(store, "RELIANCE", context.day)


def test_an_isin_change_is_reported_and_checks_the_candles(tmp_path: Path) -> None:
    ex_date, _ = EVENTS["BAJFINANCE"]
    context = context_for(tmp_path, stored_until(tmp_path, "BAJFINANCE", ex_date), ex_date)
    change = {"symbol": "BAJFINANCE", "old_isin": "INE296A01024", "new_isin": "INE296A01032"}
    candles = FixtureCandles()
    report = run(context, candles=candles, isin_changes=[change])
    assert candles.asked == ["BAJFINANCE"]
    assert "ISIN of BAJFINANCE changed" in report.warnings[0]
    assert [a["symbol"] for a in report.applied] == ["BAJFINANCE"]


class UnadjustedCandles(FixtureCandles):
    """A broker that has not adjusted its history yet: the pre-action prices (the shipped basis)."""

    def fetch(self, instrument: Instrument, start: date, end: date) -> list[DayCandle]:
        factor = EVENTS[instrument.symbol][1]
        return [DayCandle(c.day, c.open * factor, c.high * factor, c.low * factor, c.close * factor, c.volume)
                for c in super().fetch(instrument, start, end)]


def test_a_broker_adjusting_late_does_not_undo_an_applied_action(tmp_path: Path) -> None:
    ex_date, factor = EVENTS["RELIANCE"]
    store = stored_until(tmp_path, "RELIANCE", ex_date)
    context = context_for(tmp_path, store, ex_date)
    run(context, file_actions=[CorporateAction("RELIANCE", ex_date, factor, "bonus", "file")])
    rebased = store.read("RELIANCE", "1d")
    late = UnadjustedCandles()
    report = run(context, candles=late, check_symbols=["RELIANCE"])
    assert report.applied == [] and report.warnings == [] and late.asked == []  # nothing after the ex-date yet
    pd.testing.assert_frame_equal(store.read("RELIANCE", "1d"), rebased)
