"""`autotrader corporate-actions apply|show` and the pre-open task, on a copy of the shipped RELIANCE history at
its 1:1 bonus."""

from __future__ import annotations

import json
import os
import shutil
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.data.instruments import load_instruments
from engine.models import IST
from engine.resources import shipped_data_dir
from engine.storage import BarStore
from tests.engine.data.test_corporate_actions import EVENTS, assert_adjusted, stored_until

# the CLI configures logging (a redacting record factory, root handlers): put it back after each test
pytestmark = pytest.mark.usefixtures("restore_logging")


def test_apply_then_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ex_date, factor = EVENTS["RELIANCE"]
    data = tmp_path / "data"
    stored_until(data, "RELIANCE", ex_date)  # data/bars
    shutil.copy(shipped_data_dir() / "instruments.parquet", data / "instruments.parquet")
    actions = tmp_path / "actions.csv"
    actions.write_text("symbol,ex_date,kind,ratio\nRELIANCE,2024-10-28,bonus,1:1\n")
    monkeypatch.setenv("AUTOTRADER_DATA_DIR", str(data))
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("AUTOTRADER_CORPORATE_ACTIONS_FILE", str(actions))

    applied = CliRunner().invoke(app, ["corporate-actions", "apply", "--date", ex_date.isoformat(), "--json"])
    assert applied.exit_code == 0, applied.output
    result = json.loads(applied.output)
    assert [(a["symbol"], a["factor"], a["status"]) for a in result["applied"]] == [("RELIANCE", factor, "APPLIED")]
    assert_adjusted(BarStore(data / "bars"), "RELIANCE", ex_date)

    again = CliRunner().invoke(app, ["corporate-actions", "apply", "--date", ex_date.isoformat()])
    assert again.exit_code == 0 and "nothing to apply" in again.output
    shown = json.loads(CliRunner().invoke(app, ["corporate-actions", "show", "--json"]).output)
    assert [(s["symbol"], s["ex_date"], s["status"], s["rebased"]["done"]) for s in shown] == [
        ("RELIANCE", "2024-10-28", "APPLIED", ["bars", "shares", "positions", "gtts"])]

    actions.write_text("symbol,ex_date,kind,ratio\nRELIANCE,2024-10-28,merger,1:1\n")
    bad = CliRunner().invoke(app, ["corporate-actions", "apply", "--date", ex_date.isoformat()])
    assert bad.exit_code == 2 and "kind 'merger'" in bad.output


async def test_the_pre_open_task_rebases_a_held_position_and_moves_its_gtt_with_the_paper_broker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.brokers.paper.broker import PaperBroker
    from engine.clock import LiveClock, SteppedClock
    from engine.execution.exits import exit_request_for
    from engine.execution.manager import OrderManager
    from engine.session.stages import open_trading_day
    from tasks.pre_open import apply_corporate_actions
    from tests.engine.portfolio.test_rebase import QUANTITY, open_position

    for name in list(os.environ):
        if name.startswith(("AUTOTRADER_", "KITE_", "UPSTOX_")):
            monkeypatch.delenv(name)
    ex_date, factor = EVENTS["RELIANCE"]
    data = tmp_path / "data"
    store = stored_until(data, "RELIANCE", ex_date)
    shutil.copy(shipped_data_dir() / "instruments.parquet", data / "instruments.parquet")
    actions = tmp_path / "actions.toml"
    actions.write_text('[[action]]\nsymbol = "RELIANCE"\nex_date = 2024-10-28\nkind = "bonus"\nratio = "1:1"\n')
    context = open_trading_day(ex_date.isoformat(), LiveClock(), database_url=f"sqlite:///{tmp_path / 'day.db'}",
                               data_dir=str(data), corporate_actions_file=str(actions))
    [instrument] = [i for i in load_instruments(data) if i.symbol == "RELIANCE"]
    price = float(store.read("RELIANCE", "1d")["close"].iloc[-1])
    clock = SteppedClock(datetime.combine(ex_date, time(8, 0), IST))
    orders = OrderManager(PaperBroker(clock, db=context.db), context.db, clock, trading_day=ex_date)
    gtt = await orders.place_exit(exit_request_for(instrument, QUANTITY, stop=price * 0.9, target=price * 1.2,
                                                   last_price=price, tag="EXIT-1"))
    open_position(context.db, instrument, date(2024, 10, 1), price, gtt.exit_id)

    artifacts: list[str] = []

    async def record(*, markdown: str, **_: Any) -> None:
        artifacts.append(markdown)

    monkeypatch.setattr("tasks.pre_open.acreate_markdown_artifact", record)
    result = await apply_corporate_actions.fn(context)
    assert artifacts == ["- applied: RELIANCE x2 (ex-date 2024-10-28, file)"]
    [applied] = result["applied"]
    assert (applied["symbol"], applied["status"]) == ("RELIANCE", "APPLIED")
    assert [(g["exit_id"], g["action"]) for g in applied["rebased"]["gtts"]] == [(gtt.exit_id, "modified")]
    assert [p["quantity"] for p in applied["rebased"]["positions"]] == [(QUANTITY, QUANTITY * factor)]
    assert (await apply_corporate_actions.fn(context))["applied"] == []
