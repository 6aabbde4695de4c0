"""`autotrader report`: the day's setups, orders, trades, positions and risk from the database."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.report import REPORT_KEYS, daily_report
from engine.settings import load_settings
from tests.engine.strategy.support import RELIANCE
from tests.engine.test_trader import DAY, feed, make_rig


async def trade_a_day(tmp_path: Path) -> str:
    rig = make_rig(tmp_path)
    engine = rig.engine()
    await feed(engine, rig.clock, 14, 0, 0, (RELIANCE, 100.0))
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    await engine.execute_entry_window()
    await feed(engine, rig.clock, 15, 10, 5, (RELIANCE, 100.0))
    await feed(engine, rig.clock, 15, 20, 0, (RELIANCE, 110.2))  # target: the GTT's target leg fills
    await feed(engine, rig.clock, 15, 20, 5, (RELIANCE, 110.2))
    await engine.end_of_day()
    return f"sqlite:///{tmp_path / 'engine.db'}"


async def test_report_has_exactly_the_documented_shape(tmp_path: Path) -> None:
    url = await trade_a_day(tmp_path)
    from engine.storage import init_db

    report = daily_report(init_db(url), DAY, load_settings())
    assert tuple(report) == REPORT_KEYS == ("setups", "orders", "trades", "positions", "risk")
    # 1801 shares (10,000 / (LIMIT 100.50 - stop 94.95)) filled at 100.05: actual risk 1801 * 5.10
    assert report["risk"] == {"capital": 1_000_000.0, "daily_risk_cap": 30_000.0, "risk_used": 9185.1}
    [setup] = report["setups"]
    assert (setup["symbol"], setup["status"], setup["quantity"]) == ("RELIANCE", "EXECUTED", 1801)
    assert {"name": "min_reward_risk", "passed": True, "observed": "reward/risk 2 >= 1"} in setup["rules"]
    assert [(o["side"], o["purpose"], o["status"]) for o in report["orders"]] == [
        ("BUY", "ENTRY", "FILLED"), ("SELL", "EXIT", "FILLED")]
    [trade] = report["trades"]
    assert (trade["exit_reason"], trade["quantity"], trade["entry_time"]) == ("target (GTT)", 1801,
                                                                              "2024-06-04T15:10:05+05:30")
    [position] = report["positions"]
    assert position["status"] == "CLOSED"
    empty = daily_report(init_db(url), date(2024, 6, 5), load_settings())
    assert empty == {"setups": [], "orders": [], "trades": [], "positions": [],
                     "risk": {"capital": 1_000_000.0, "daily_risk_cap": 30_000.0, "risk_used": 0.0}}


async def test_report_command_json_and_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = await trade_a_day(tmp_path)
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", url)
    result = CliRunner().invoke(app, ["report", "--date", "2024-06-04", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload) == ["setups", "orders", "trades", "positions", "risk"]
    assert list(payload["risk"]) == ["capital", "daily_risk_cap", "risk_used"]
    assert payload["trades"][0]["net_pnl"] == pytest.approx(payload["trades"][0]["gross_pnl"]
                                                           - payload["trades"][0]["charges"], abs=0.01)
    readable = CliRunner().invoke(app, ["report", "--date", "2024-06-04"], env={"COLUMNS": "200"})
    assert readable.exit_code == 0 and "Setups (1)" in readable.output and "RELIANCE" in readable.output
    bad = CliRunner().invoke(app, ["report", "--date", "04-06-2024"])
    assert bad.exit_code == 2 and "is not a date" in bad.output
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", f"sqlite:///{tmp_path / 'missing.db'}")
    missing = CliRunner().invoke(app, ["report", "--date", "2024-06-04"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
