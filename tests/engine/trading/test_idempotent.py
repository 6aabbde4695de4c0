"""Settling an entry or an exit twice is harmless: a repeated (or late) broker answer is ignored."""

from __future__ import annotations

from pathlib import Path

from engine.storage.tables import OrderRow, PositionRow, TradeRow
from engine.trading.events import EntryAnswered, ExitOrderAnswered
from tests.engine.strategy.support import RELIANCE
from tests.engine.test_trader import feed, make_rig, rows


async def test_a_repeated_fill_answer_opens_one_position_and_a_repeated_exit_answer_closes_it_once(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path)
    engine = rig.engine(exits_at_broker=False)
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    await engine.execute_entry_window()
    await feed(engine, rig.clock, 15, 10, 5, (RELIANCE, 100.0))  # filled: the position opens
    [entry] = [o for o in rows(rig.db, OrderRow) if o.purpose == "ENTRY"]
    filled = await engine.orders.refresh(entry.client_order_id)
    for _ in range(2):
        engine.post(EntryAnswered(client_order_id=entry.client_order_id, order=filled))
    await engine.drain()
    [position] = rows(rig.db, PositionRow)
    assert (position.status, position.quantity) == ("OPEN", 1801)

    await feed(engine, rig.clock, 15, 20, 0, (RELIANCE, 94.9))  # below the stop: the engine sells
    await feed(engine, rig.clock, 15, 20, 5, (RELIANCE, 94.5))  # the sell fills: 94.5 less 5 bps -> 94.45
    [sell] = [o for o in rows(rig.db, OrderRow) if o.purpose == "EXIT"]
    sold = await engine.orders.refresh(sell.client_order_id)
    for _ in range(2):
        engine.post(ExitOrderAnswered(position_id=position.id, client_order_id=sell.client_order_id, order=sold))
        engine.post(EntryAnswered(client_order_id=entry.client_order_id, order=filled))  # late, after the close
    await engine.drain()
    [trade] = rows(rig.db, TradeRow)
    assert (trade.quantity, trade.exit_price, trade.exit_reason) == (1801, 94.45, "stop")
    assert [p.status for p in rows(rig.db, PositionRow)] == ["CLOSED"]
    assert engine.positions.open == {} and engine.pending == {}
    assert (engine.broker_errors, engine.command_errors) == (0, 0)
    assert engine.ledger.realized_pnl == trade.net_pnl
