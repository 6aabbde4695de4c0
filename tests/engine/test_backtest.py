"""Backtests over the shipped daily bars (data/), a few symbols and days."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, event
from typer.testing import CliRunner

from cli.main import app
from engine.backtest import Backtest, BacktestError, _frame_bars, bar_path, run_backtest
from engine.models import IST, Bar, Timeframe
from engine.settings import load_settings
from engine.storage import BarStore
from tests.conftest import PROJECT_ROOT
from tests.engine.strategy.support import AlwaysLong

DATA = PROJECT_ROOT / "data"
pytestmark = pytest.mark.skipif(not (DATA / "instruments.parquet").exists(), reason="shipped data not built")


@given(low=st.floats(0.05, 10_000), spread=st.floats(0, 500), o=st.floats(0, 1), c=st.floats(0, 1))
def test_derived_ticks_stay_inside_the_bar(low: float, spread: float, o: float, c: float) -> None:
    high = low + spread
    bar = Bar("X", datetime(2024, 6, 4, tzinfo=IST), low + o * spread, high, low, low + c * spread, 1)
    assert bar.is_consistent()
    path = bar_path(bar)
    assert path[0] == bar.open and path[-1] == bar.close
    assert all(bar.low <= p <= bar.high for p in path)
    assert {bar.low, bar.high} <= set(path)


async def test_backtest_uses_the_live_decision_path_within_the_limits() -> None:
    settings = load_settings(strategy={"validator": {"conditions": []}}, risk={"daily_risk_cap_pct": 1.5})
    report = await run_backtest(settings, date(2024, 6, 3), date(2024, 6, 7), ["RELIANCE", "TCS", "INFY"],
                                strategy=AlwaysLong())
    data = report.as_dict()
    assert data["trading_days"] == 5 and data["symbols"] == 3
    assert all(day.risk_used <= day.daily_risk_cap + 1e-6 for day in report.days)
    assert report.days[0].entries >= 1
    store = BarStore(DATA / "bars")
    for trade in data["trades"]:
        entered = date.fromisoformat(trade["entry_time"][:10])
        bar = store.read_bars(trade["symbol"], "1d", entered, date(2024, 6, 30))[0]
        # entry is a market fill on the derived close tick, plus 5 bps slippage
        assert trade["entry_price"] == pytest.approx(bar.close * 1.0005, abs=0.1)
        assert trade["net_pnl"] == pytest.approx(trade["gross_pnl"] - trade["charges"], abs=0.011)
    summary = data["summary"]
    assert summary["trades"] == len(data["trades"])
    assert summary["net_pnl"] == pytest.approx(sum(t["net_pnl"] for t in data["trades"]), abs=0.01)
    assert summary["max_drawdown"] >= 0 and len(data["equity"]) == 5


async def test_backtest_is_deterministic() -> None:
    settings = load_settings()
    first = await run_backtest(settings, date(2024, 6, 3), date(2024, 6, 5), ["HDFCBANK", "ICICIBANK"])
    second = await run_backtest(settings, date(2024, 6, 3), date(2024, 6, 5), ["HDFCBANK", "ICICIBANK"])
    assert first.as_dict() == second.as_dict()


async def test_a_backtest_runs_on_the_memory_database_without_sql() -> None:
    statements: list[str] = []

    def record(_connection: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        report = await run_backtest(load_settings(strategy={"validator": {"conditions": []}}), date(2024, 6, 3),
                                    date(2024, 6, 7), ["RELIANCE", "TCS", "INFY"], strategy=AlwaysLong())
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert report.days[0].entries >= 1 and len(report.trades) + report.open_positions >= 1
    assert all(trade["initial_risk"] and trade["trading_day"] for trade in report.trades)
    assert statements == []


def test_bad_input_gets_a_clear_error() -> None:
    settings = load_settings()
    with pytest.raises(BacktestError, match="unknown symbol"):
        Backtest(settings, date(2024, 6, 3), date(2024, 6, 5), ["NOSUCH"])
    with pytest.raises(BacktestError, match="before --from"):
        Backtest(settings, date(2024, 6, 5), date(2024, 6, 3))


def test_backtest_command_prints_json() -> None:
    result = CliRunner().invoke(app, ["backtest", "--from", "2024-06-03", "--to", "2024-06-04", "--symbols",
                                      "RELIANCE,TCS", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"start", "end", "timeframe", "symbols", "trading_days", "capital", "trades", "summary",
                            "equity"}
    assert payload["trading_days"] == 2 and payload["timeframe"] == "1d"
    bad = CliRunner().invoke(app, ["backtest", "--from", "2024-06-03", "--to", "2024-06-04", "--symbols", "NOPE"])
    assert bad.exit_code == 2 and "unknown symbol(s) NOPE" in bad.output


def test_daily_steps_hold_each_instruments_bar_path_in_instrument_key_order() -> None:
    symbols = ["TCS", "INFY", "RELIANCE"]  # not in instrument-key order
    backtest = Backtest(load_settings(), date(2024, 6, 3), date(2024, 6, 5), symbols)
    _, bars = backtest._load()
    days = list(backtest._daily_steps(bars))
    assert [day for day, _ in days] == [date(2024, 6, 3), date(2024, 6, 4), date(2024, 6, 5)]
    keys = sorted(i.instrument_key for i in backtest.instruments)
    symbol_of = {i.instrument_key: i.symbol for i in backtest.instruments}
    day, steps = days[1]
    assert [step.at.astimezone(IST).strftime("%H:%M") for step in steps] == [
        "09:15", "11:00", "13:00", "15:10", "15:15", "15:29"]
    assert all([tick.instrument_key for tick in step.ticks] == keys for step in steps)
    for position, key in enumerate(keys):
        (bar,) = backtest.store.read_bars(symbol_of[key], "1d", day, day + timedelta(days=1))
        ticks = [step.ticks[position] for step in steps]
        assert [tick.ltp for tick in ticks] == [*bar_path(bar), bar.close, bar.close]
        assert [tick.volume for tick in ticks][-1] == bar.volume
        assert all(tick.ltt_ms == int(step.at.timestamp() * 1000) for tick, step in zip(ticks, steps, strict=True))
        assert {tick.close_prev for tick in ticks} == {backtest.last_price[key]}  # the close before the first day


def test_frame_bars_are_the_stores_bars() -> None:
    store = BarStore(DATA / "bars")
    frame = store.read("RELIANCE", "1d", date(2024, 6, 3), date(2024, 6, 8))
    bars = _frame_bars("RELIANCE", frame, Timeframe.DAY)
    assert len(bars) == 5 and bars == store.read_bars("RELIANCE", "1d", date(2024, 6, 3), date(2024, 6, 8))
    assert all(type(bar.open) is float and type(bar.volume) is int and bar.ts.tzinfo is not None for bar in bars)
    assert _frame_bars("RELIANCE", frame.iloc[:0], Timeframe.DAY) == []
