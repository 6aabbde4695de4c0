"""Stops that hold and exits the broker accepts (issue #13, items 1 and 2), on the paper venue and a
stepped clock: a GTT leg that gaps through its limit is chased until the position is flat, a partly
filled leg closes only what it sold (the rest stays protected), and the engine's own exits are
protected MARKET orders, retried with backoff a bounded number of times, then recorded EXIT_FAILED."""

from __future__ import annotations

import json
from pathlib import Path

from engine.brokers.paper import PaperBroker
from engine.models import Order, OrderIntent, OrderPurpose, OrderStatus, OrderType, Side
from engine.portfolio.times import from_db
from engine.sim import FillModel
from engine.storage.tables import GttRow, OrderEventRow, OrderRow, PositionRow, TradeRow
from engine.trader import TradingEngine
from tests.engine.strategy.support import RELIANCE
from tests.engine.test_trader import Rig, feed, make_rig, make_settings, rows


async def _enter(rig: Rig, fills: int = 1) -> TradingEngine:
    """Enter RELIANCE at 15:10 (1801 shares filled at 100.05 over `fills` ticks; GTT stop 94.95, LIMIT 94.45)."""
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    await engine.execute_entry_window()
    for second in range(fills):
        await feed(engine, rig.clock, 15, 10, 5 + 5 * second, (RELIANCE, 100.0))
    [position] = rows(rig.db, PositionRow)
    assert (position.quantity, position.exit_id is not None) == (1801, True)
    return engine


async def test_a_gtt_leg_that_gaps_through_its_limit_is_chased_until_the_position_is_flat(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    engine = await _enter(rig)
    # the price gaps from 100 to 90: the stop (94.95) fires a SELL LIMIT 94.45 that cannot fill at 90
    for second in range(0, 60, 5):
        await feed(engine, rig.clock, 15, 20, second, (RELIANCE, 90.0))
    leg = next(o for o in rows(rig.db, OrderRow) if o.client_order_id.startswith("GTT"))
    assert (leg.status, leg.filled_quantity, leg.price) == ("CANCELLED", 0, 94.45)  # chased: cancelled after 30 s
    [trade] = rows(rig.db, TradeRow)
    # then sold by a protected MARKET order (2 % below 90 at worst): 90 less 5 bps of slippage
    assert (trade.quantity, trade.exit_price) == (1801, 89.95)
    assert [p.status for p in rows(rig.db, PositionRow)] == ["CLOSED"]
    assert await rig.broker.positions() == []  # flat at the venue too
    [sell] = [o for o in rows(rig.db, OrderRow) if o.purpose == "EXIT" and not o.client_order_id.startswith("GTT")]
    assert (sell.order_type, sell.status) == ("MARKET", "FILLED")
    intent = json.loads(next(e for e in _events(rig.db, sell.client_order_id) if e.kind == "INTENT").detail_json)
    assert intent["market_protection"] == 2.0


async def test_a_partly_filled_leg_closes_only_what_it_sold_and_the_rest_stays_protected(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.broker = PaperBroker(rig.clock, fill_model=FillModel(slippage_bps=5.0, partial_fill_ratio=0.5,
                                                             fills_at_next_tick=True),
                             instruments=rig.instruments, db=rig.db)
    engine = await _enter(rig, fills=3)  # half the entry fills on each tick: 900, 900, 1
    await feed(engine, rig.clock, 15, 20, 0, (RELIANCE, 94.9))  # the stop fires; half the leg fills (900)
    for second in range(1, 35, 5):  # then the price gaps below the leg's limit (94.45): the rest rests
        await feed(engine, rig.clock, 15, 20, second, (RELIANCE, 90.0))
    for second in range(36, 60, 5):  # chased at 15:20:31, and back between stop and target
        await feed(engine, rig.clock, 15, 20, second, (RELIANCE, 96.0))
    [trade] = rows(rig.db, TradeRow)
    assert (trade.quantity, trade.exit_price, trade.exit_reason) == (900, 94.85, "stop (GTT)")
    [position] = rows(rig.db, PositionRow)
    assert (position.status, position.quantity) == ("OPEN", 901)  # the unsold rest, still ours
    [broker_position] = await rig.broker.positions()
    assert broker_position.quantity == 901
    # and protected again: a new GTT for the 901 left (the first one is settled)
    first, second_gtt = sorted(rows(rig.db, GttRow), key=lambda g: g.created_at)
    assert (first.status, second_gtt.status, second_gtt.quantity) == ("TRIGGERED_STOP", "ACTIVE", 901)
    assert engine.positions.open[RELIANCE.instrument_key].quantity == 901


class RefusingExits(PaperBroker):
    """A venue that refuses every SELL order (as Kite refused unprotected MARKET exits)."""

    async def place_order(self, intent: OrderIntent) -> Order:
        if intent.side is Side.SELL:
            return Order(intent.client_order_id, intent.instrument.instrument_key, intent.side, intent.quantity,
                         OrderStatus.REJECTED, broker_order_id=f"R{intent.client_order_id}",
                         order_type=intent.order_type, message="Market orders without market protection are not "
                                                               "allowed via API")
        return await super().place_order(intent)


async def test_refused_exits_are_retried_with_backoff_then_recorded_as_failed(tmp_path: Path) -> None:
    settings = make_settings(risk={"max_daily_loss_pct": 0.5, "flatten_on_kill": True},
                             execution={"exit_retry_max_attempts": 3, "exit_retry_backoff_seconds": 10.0})
    rig = make_rig(tmp_path, settings)
    rig.broker = RefusingExits(rig.clock, slippage_bps=5.0, instruments=rig.instruments, db=rig.db)
    engine = await _enter(rig)
    await feed(engine, rig.clock, 15, 11, 0, (RELIANCE, 97.0))  # the kill switch trips and flattens
    assert engine.kill_switch
    for second in range(5, 120, 5):
        await feed(engine, rig.clock, 15, 11 + second // 60, second % 60, (RELIANCE, 97.0))
    exits = [o for o in rows(rig.db, OrderRow) if o.purpose == OrderPurpose.EXIT.value]
    assert [o.status for o in exits] == ["REJECTED"] * 3  # bounded: never an endless stream of new ids
    sent = sorted(from_db(o.created_at) for o in exits)
    assert [(b - a).total_seconds() >= wait for a, b, wait in zip(sent, sent[1:], (10, 20), strict=False)] == [True,
                                                                                                               True]
    [failed] = [e for e in _all_events(rig.db) if e.kind == "EXIT_FAILED"]
    assert failed.client_order_id == exits[-1].client_order_id
    assert json.loads(failed.detail_json) == {"symbol": "RELIANCE", "reason": "kill switch", "attempts": 3}
    assert [p.status for p in rows(rig.db, PositionRow)] == ["OPEN"]  # still held, still watched
    assert RELIANCE.instrument_key in engine.positions.open
    # and protected at the broker again: the first exit cancelled its GTT, a new one holds the stop
    assert [(g.status, g.quantity) for g in sorted(rows(rig.db, GttRow), key=lambda g: g.created_at)] == [
        ("CANCELLED", 1801), ("ACTIVE", 1801)]
    restarted = rig.engine()  # the next run of the day knows the attempts are used up: no new order
    for second in range(0, 30, 5):
        await feed(restarted, rig.clock, 15, 14, second, (RELIANCE, 97.0))
    assert len([o for o in rows(rig.db, OrderRow) if o.purpose == OrderPurpose.EXIT.value]) == 3
    assert len([e for e in _all_events(rig.db) if e.kind == "EXIT_FAILED"]) == 1


async def test_the_engines_own_exit_is_a_protected_market_order(tmp_path: Path) -> None:
    settings = make_settings(risk={"max_daily_loss_pct": 0.5, "flatten_on_kill": True},
                             execution={"market_protection": 3.5})
    rig = make_rig(tmp_path, settings)
    engine = await _enter(rig)
    await feed(engine, rig.clock, 15, 11, 0, (RELIANCE, 97.0))
    await feed(engine, rig.clock, 15, 11, 5, (RELIANCE, 97.0))
    [sell] = [o for o in rows(rig.db, OrderRow) if o.purpose == "EXIT"]
    intent = json.loads(next(e for e in _events(rig.db, sell.client_order_id) if e.kind == "INTENT").detail_json)
    assert (sell.order_type, sell.status, intent["market_protection"]) == (OrderType.MARKET.value, "FILLED", 3.5)


def _all_events(db: object) -> list[OrderEventRow]:
    return rows(db, OrderEventRow)


def _events(db: object, client_order_id: str) -> list[OrderEventRow]:
    return [e for e in rows(db, OrderEventRow) if e.client_order_id == client_order_id]


async def test_an_exit_resting_beyond_its_protection_is_chased_at_the_new_price(tmp_path: Path) -> None:
    settings = make_settings(risk={"max_daily_loss_pct": 0.5, "flatten_on_kill": True})
    rig = make_rig(tmp_path, settings)
    engine = await _enter(rig)
    await feed(engine, rig.clock, 15, 11, 0, (RELIANCE, 97.0))  # kill switch: a protected MARKET sell at 97
    for second in range(1, 60, 5):  # the price falls 7 %: beyond the 2 % protection (95.10) it rests
        await feed(engine, rig.clock, 15, 11, second, (RELIANCE, 90.0))
    first, second_exit = sorted((o for o in rows(rig.db, OrderRow) if o.purpose == "EXIT"), key=lambda o: o.created_at)
    assert (first.status, first.filled_quantity) == ("CANCELLED", 0)  # chased after 30 s …
    assert second_exit.status == "FILLED"  # … and sold again, protected around 90
    [trade] = rows(rig.db, TradeRow)
    assert (trade.quantity, trade.exit_price, trade.exit_reason) == (1801, 89.95, "kill switch")


async def test_a_chased_exit_that_sold_part_books_that_part_and_sells_the_rest(tmp_path: Path) -> None:
    settings = make_settings(risk={"max_daily_loss_pct": 0.5, "flatten_on_kill": True})
    rig = make_rig(tmp_path, settings)
    rig.broker = PaperBroker(rig.clock, fill_model=FillModel(partial_fill_ratio=0.5, fills_at_next_tick=True),
                             instruments=rig.instruments, db=rig.db)
    engine = await _enter(rig, fills=3)
    await feed(engine, rig.clock, 15, 11, 0, (RELIANCE, 97.0))  # kill switch: sell 1801 protected at 95.10
    await feed(engine, rig.clock, 15, 11, 1, (RELIANCE, 96.9))  # half of it fills
    for second in range(2, 60, 5):  # then the price is beyond the protection: the rest rests, is chased
        await feed(engine, rig.clock, 15, 11, second, (RELIANCE, 90.0))
    trades = sorted(rows(rig.db, TradeRow), key=lambda t: t.exit_time)
    assert [(t.quantity, t.exit_price, t.exit_reason) for t in trades] == [(900, 96.9, "kill switch"),
                                                                          (901, 90.0, "kill switch")]
    assert [p.status for p in rows(rig.db, PositionRow)] == ["CLOSED"]
    assert await rig.broker.positions() == []
