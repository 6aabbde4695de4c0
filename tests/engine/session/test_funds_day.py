"""Pre-open funds read: the broker's cash through `Broker.funds()` and the usable capital."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.clock import LiveClock
from engine.session import day as day_work
from engine.session.stages import open_trading_day


@pytest.fixture(autouse=True)
def _no_broker_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("AUTOTRADER_", "KITE_", "UPSTOX_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("broker", ["zerodha-sandbox", "upstox-sandbox"])
async def test_pre_open_reads_the_sandbox_cash_and_keeps_the_smaller_capital(tmp_path: Path, broker: str) -> None:
    context = open_trading_day("2024-06-04", LiveClock(), database_url=f"sqlite:///{tmp_path / 'day.db'}",
                               broker=broker, capital=250_000.0)
    funds = await day_work.read_broker_funds(context)
    assert funds["cash"] == 10_000_000.0  # the sandbox account's opening balance
    assert (funds["usable_capital"], funds["limited_by"]) == (250_000.0, "settings")


async def test_pre_open_with_the_paper_broker_keeps_the_settings_capital(tmp_path: Path) -> None:
    context = open_trading_day("2024-06-04", LiveClock(), database_url=f"sqlite:///{tmp_path / 'day.db'}")
    funds = await day_work.read_broker_funds(context)
    assert (funds["cash"], funds["usable_capital"]) == (None, 1_000_000.0)
    assert "reported no cash" in funds["reason"]


async def test_the_pre_open_task_returns_the_engine_answer(tmp_path: Path) -> None:
    from tasks.pre_open import read_broker_funds

    context = open_trading_day("2024-06-04", LiveClock(), database_url=f"sqlite:///{tmp_path / 'day.db'}",
                               broker="zerodha-sandbox")
    funds = await read_broker_funds.fn(context)
    assert (funds["broker"], funds["usable_capital"]) == ("zerodha", 1_000_000.0)
