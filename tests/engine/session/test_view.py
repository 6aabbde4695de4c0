"""The live view's rows from a real trading engine on a stepped clock: progress on the session clock, an open
position marked at its last price, the same position once its GTT stop closed it, the setups found so far,
the realised P&L and the kill switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.session.view import POSITION_COLUMNS, SETUP_COLUMNS, session_progress, session_view
from tests.engine.strategy.support import RELIANCE, at
from tests.engine.test_trader import DAY, SESSION, feed, make_rig, make_settings


@pytest.mark.parametrize(("hh", "mm", "expected"), [(9, 0, 0.0), (9, 15, 0.0), (12, 0, 44.0), (15, 30, 100.0),
                                                    (15, 45, 100.0)])
def test_progress_is_the_share_of_the_session_elapsed_on_its_clock(hh: int, mm: int, expected: float) -> None:
    assert session_progress(SESSION, at(DAY, hh, mm)) == expected


async def test_an_open_position_is_marked_at_its_last_price_then_shows_its_exit_once_closed(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    before = session_view(engine, ticks=1)
    assert before.positions == []
    assert before.setups == [{"symbol": "RELIANCE", "found_at": "15:10:00", "entry": 100.0, "stop": 94.95,
                              "target": 110.1, "status": "CANDIDATE"}]

    await engine.execute_entry_window()
    await feed(engine, rig.clock, 15, 10, 5, (RELIANCE, 100.0))  # the entry fills at 100.05
    await feed(engine, rig.clock, 15, 15, 0, (RELIANCE, 102.0))
    view = session_view(engine, ticks=3)
    [row] = view.positions
    assert tuple(row) == POSITION_COLUMNS and tuple(view.setups[0]) == SETUP_COLUMNS
    exit_id = engine.positions.open[RELIANCE.instrument_key].exit_id
    assert row == {"symbol": "RELIANCE", "qty": 1801, "avg": 100.05, "ltp": 102.0,
                   "unrealised": round(1801 * (102.0 - 100.05), 2), "stop": 94.95, "target": 110.1,
                   "exit_status": f"protected by GTT {exit_id}"}
    assert view.setups[0]["status"] == "EXECUTED"
    assert (view.at, view.progress_pct, view.ticks) == (at(DAY, 15, 15), round(360 / 375 * 100, 2), 3)
    assert (view.open_positions, view.closed_trades, view.realised_pnl, view.unrealised_pnl) == (1, 0, 0.0, 3511.95)
    assert not view.kill_switch

    await feed(engine, rig.clock, 15, 20, 0, (RELIANCE, 94.9))  # crosses the stop: the GTT fires
    await feed(engine, rig.clock, 15, 20, 5, (RELIANCE, 94.8))
    after = session_view(engine)
    assert after.positions == [{"symbol": "RELIANCE", "qty": 1801, "avg": 100.05, "ltp": 94.85, "unrealised": 0.0,
                                "stop": None, "target": None,
                                "exit_status": "closed 15:20: stop (GTT), net -9,474.26"}]
    assert (after.open_positions, after.closed_trades, after.realised_pnl, after.unrealised_pnl) == (0, 1, -9474.26,
                                                                                                      0.0)


async def test_the_kill_switch_and_its_reason_are_in_the_view(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, make_settings(risk={"max_daily_loss_pct": 0.5}))
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    await engine.execute_entry_window()
    await feed(engine, rig.clock, 15, 10, 5, (RELIANCE, 100.0))
    await feed(engine, rig.clock, 15, 11, 0, (RELIANCE, 97.0))  # 1801 * (97 - 100.05) = -5,493.05: > 0.5 % of 10 lakh
    view = session_view(engine)
    assert view.kill_switch and "max daily loss 5000.00" in view.kill_reason
    assert view.positions[0]["ltp"] == 97.0 and view.unrealised_pnl == -5493.05
