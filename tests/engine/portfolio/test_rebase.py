"""An open position held across a split/bonus: no phantom P&L, quantity/average/stop/target rebased on the tick
grid, its GTT moved with the broker, and nothing applied twice. Real events: RELIANCE's 1:1 bonus (ex 2024-10-28)
and BAJFINANCE's split + bonus (ex 2025-06-16), prices from the shipped data and the broker's adjusted fixture."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from engine.brokers.paper.broker import PaperBroker
from engine.clock import SteppedClock
from engine.data.corporate_actions import ActionContext, CorporateAction, run_corporate_actions
from engine.data.ticks import paise
from engine.execution.exits import exit_request_for
from engine.execution.manager import OrderManager
from engine.models import IST, Instrument
from engine.portfolio.charges import ChargeCalculator
from engine.portfolio.positions import PositionBook, exit_trigger
from engine.portfolio.rebase import rebased_values
from engine.settings import load_settings
from engine.storage import BarStore, session_scope
from engine.storage.tables import GttRow, PositionRow
from engine.trading.risk_control import RiskController
from engine.trading.setups import SetupStore
from tests.engine.data.test_corporate_actions import EVENTS, adjusted, context_for, midnight, stored_until

QUANTITY = 100


def on_grid(price: float, instrument: Instrument) -> bool:
    return paise(price) % paise(instrument.tick_size) == 0


def open_position(db: Engine, instrument: Instrument, opened: date, price: float, exit_id: str) -> int:
    stop, target = instrument.round_price(price * 0.93, "up"), instrument.round_price(price * 1.15, "up")
    with session_scope(db) as session:
        row = PositionRow(instrument_key=instrument.instrument_key, symbol=instrument.symbol, quantity=QUANTITY,
                          average_price=price, stop=stop, target=target,
                          opened_at=datetime.combine(opened, time(15, 20), IST), entry_client_order_id="ENTRY-1",
                          exit_id=exit_id, initial_risk=QUANTITY * (price - stop))
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def day_loss_seen(db: Engine, day: date, instrument: Instrument, last_price: float) -> tuple[float, str | None, bool]:
    """What the live path sees at `last_price` on `day` (no previous close from the feed: P&L from the
    average): the day's P&L, the exit it would fire, and whether the kill switch trips."""
    settings = load_settings()
    book = PositionBook(db, ChargeCalculator.from_settings(settings), {instrument.instrument_key: instrument})
    [position] = book.load()
    book.mark(position, last_price)
    clock = SteppedClock(datetime.combine(day, time(9, 20), IST))
    risk = RiskController(settings, clock, db, day, book.charges, book, SetupStore(db, day))
    return position.day_pnl, exit_trigger(position, last_price), risk.trip_on_loss()


def paper_context(tmp_path: Path, store: BarStore, ex_date: date) -> tuple[PaperBroker, ActionContext, OrderManager]:
    """The pre-open of `ex_date` (08:30) with a paper broker behind the context's order manager."""
    clock = SteppedClock(datetime.combine(ex_date, time(8, 30), IST))
    broker = PaperBroker(clock)
    context = context_for(tmp_path, store, ex_date)
    context.orders = OrderManager(broker, context.db, clock, trading_day=ex_date)
    return broker, context, context.orders


@pytest.mark.parametrize("symbol", sorted(EVENTS))
def test_a_position_held_across_the_ex_date_sees_no_phantom_loss(tmp_path: Path, symbol: str) -> None:
    ex_date, factor = EVENTS[symbol]
    store = stored_until(tmp_path, symbol, ex_date)
    history = store.read(symbol, "1d")
    bought_on, bought_at = history["ts"].iloc[-10].date(), float(history["close"].iloc[-10])
    ex_bar = adjusted(symbol).set_index("ts").loc[midnight(ex_date)]  # the ex-date's traded prices
    last_close_stored = float(history["close"].iloc[-1])

    async def scenario() -> None:
        broker, context, orders = paper_context(tmp_path, store, ex_date)
        instrument = context.instruments[symbol]
        request = exit_request_for(instrument, QUANTITY, stop=instrument.round_price(bought_at * 0.93, "up"),
                                   target=instrument.round_price(bought_at * 1.15, "up"),
                                   last_price=last_close_stored, tag="EXIT-1")
        gtt = await orders.place_exit(request)
        position_id = open_position(context.db, instrument, bought_on, bought_at, gtt.exit_id)

        # Without the rebase: post-action prices against pre-action stops, a phantom loss of 1 - 1/factor.
        pnl, trigger, tripped = day_loss_seen(context.db, ex_date, instrument, float(ex_bar["open"]))
        assert pnl < -QUANTITY * bought_at * 0.45 and trigger == "stop" and tripped

        context.orders = orders
        action = CorporateAction(symbol, ex_date, factor, "bonus", "file")
        report = await run_corporate_actions(context, file_actions=[action], candles=None, check_symbols=[])
        assert [a["status"] for a in report.applied] == ["APPLIED"]
        [carried] = report.applied[0]["rebased"]["gtts"]
        assert carried == {"position_id": position_id, "exit_id": gtt.exit_id, "action": "modified"}

        with session_scope(context.db) as session:
            row = session.get(PositionRow, position_id)
            assert row is not None
            assert row.quantity == QUANTITY * factor
            assert row.average_price * row.quantity == pytest.approx(bought_at * QUANTITY, rel=1e-12)
            assert (row.stop, row.target) == rebased_values(instrument, QUANTITY, bought_at, request.stop_trigger,
                                                             request.target_trigger, factor)[2:]
            assert on_grid(row.stop, instrument) and on_grid(row.target, instrument)
            assert row.stop >= request.stop_trigger / factor and row.stop - request.stop_trigger / factor \
                < instrument.tick_size
            gtt_row = session.get(GttRow, gtt.exit_id)
            assert gtt_row is not None
            assert (gtt_row.quantity, gtt_row.stop_trigger, gtt_row.target_trigger) == (row.quantity, row.stop,
                                                                                          row.target)
        [at_broker] = await broker.list_exits()
        assert (at_broker.quantity, at_broker.stop_trigger, at_broker.target_trigger) == (row.quantity, row.stop,
                                                                                          row.target)

        # With it: the day's P&L is the real move of the holding, no exit fires, the kill switch holds.
        pnl, trigger, tripped = day_loss_seen(context.db, ex_date, instrument, float(ex_bar["open"]))
        assert pnl == pytest.approx(QUANTITY * (float(ex_bar["open"]) * factor - bought_at), rel=1e-9)
        assert trigger is None and not tripped

        again = await run_corporate_actions(context, file_actions=[action], candles=None, check_symbols=[])
        assert again.applied == [] and again.pending == []
        with session_scope(context.db) as session:
            same = session.get(PositionRow, position_id)
            assert same is not None and (same.quantity, same.stop) == (row.quantity, row.stop)

    asyncio.run(scenario())


def test_a_gtt_the_broker_deleted_is_replaced_by_a_new_protected_exit(tmp_path: Path) -> None:
    ex_date, factor = EVENTS["RELIANCE"]
    store = stored_until(tmp_path, "RELIANCE", ex_date)
    price = float(store.read("RELIANCE", "1d")["close"].iloc[-5])

    async def scenario() -> None:
        broker, context, orders = paper_context(tmp_path, store, ex_date)
        instrument = context.instruments["RELIANCE"]
        gtt = await orders.place_exit(exit_request_for(instrument, QUANTITY, stop=price * 0.9,
                                                               target=price * 1.2, last_price=price, tag="EXIT-1"))
        await broker.cancel_exit(gtt.exit_id)  # the broker dropped it at the ex-date
        position_id = open_position(context.db, instrument, date(2024, 10, 1), price, gtt.exit_id)
        report = await run_corporate_actions(context, file_actions=[CorporateAction(
            "RELIANCE", ex_date, factor, "bonus", "file")], candles=None, check_symbols=[])
        [carried] = report.applied[0]["rebased"]["gtts"]
        assert carried["action"] == "replaced" and carried["exit_id"] != gtt.exit_id
        with session_scope(context.db) as session:
            row = session.get(PositionRow, position_id)
            assert row is not None and row.exit_id == carried["exit_id"]
        active = [e for e in await broker.list_exits() if e.status.value == "ACTIVE"]
        assert [(e.exit_id, e.quantity) for e in active] == [(carried["exit_id"], QUANTITY * factor)]

    asyncio.run(scenario())


def test_without_a_broker_the_gtt_step_waits_and_the_rest_is_applied(tmp_path: Path) -> None:
    ex_date, factor = EVENTS["BAJFINANCE"]
    store = stored_until(tmp_path, "BAJFINANCE", ex_date)
    context = context_for(tmp_path, store, ex_date)
    instrument = context.instruments["BAJFINANCE"]
    price = float(store.read("BAJFINANCE", "1d")["close"].iloc[-5])
    open_position(context.db, instrument, date(2025, 6, 2), price, "GTT-AT-BROKER")
    action = CorporateAction("BAJFINANCE", ex_date, factor, "split+bonus", "file")
    first = asyncio.run(run_corporate_actions(context, file_actions=[action], candles=None, check_symbols=[]))
    assert [(p["status"], p["rebased"]["done"]) for p in first.pending] == [
        ("PENDING", ["bars", "shares", "positions"])]
    second = asyncio.run(run_corporate_actions(context, file_actions=[action], candles=None, check_symbols=[]))
    assert second.applied == [] and [p["rebased"]["done"] for p in second.pending] == [
        ["bars", "shares", "positions"]]
    with session_scope(context.db) as session:
        [row] = session.exec(select(PositionRow)).all()
        assert row.quantity == QUANTITY * factor  # rebased once, not on every run


def test_triggers_that_no_longer_straddle_the_close_cancel_the_gtt_for_the_guard(tmp_path: Path) -> None:
    """The stock closed below the (rebased) stop before the ex-date: no valid exit request exists, so the old
    GTT (pre-action prices, it would fire at once) is cancelled and the live guard decides at the first tick."""
    ex_date, factor = EVENTS["RELIANCE"]
    store = stored_until(tmp_path, "RELIANCE", ex_date)
    last_close = float(store.read("RELIANCE", "1d")["close"].iloc[-1])

    async def scenario() -> None:
        broker, context, orders = paper_context(tmp_path, store, ex_date)
        instrument = context.instruments["RELIANCE"]
        gtt = await orders.place_exit(exit_request_for(instrument, QUANTITY, stop=last_close * 0.95,
                                                               target=last_close * 1.2, last_price=last_close,
                                                               tag="EXIT-1"))
        position_id = open_position(context.db, instrument, date(2024, 10, 1), last_close * 0.97, gtt.exit_id)
        with session_scope(context.db) as session:  # a stop raised above the last close (trailing)
            row = session.get(PositionRow, position_id)
            assert row is not None
            row.stop = last_close * 1.01
            session.add(row)
        report = await run_corporate_actions(context, file_actions=[CorporateAction(
            "RELIANCE", ex_date, factor, "bonus", "file")], candles=None, check_symbols=[])
        [carried] = report.applied[0]["rebased"]["gtts"]
        assert (carried["action"], carried["exit_id"], carried["replaced"]) == ("cancelled", None, gtt.exit_id)
        assert [e.status.value for e in await broker.list_exits()] == ["CANCELLED"]
        with session_scope(context.db) as session:
            row = session.get(PositionRow, position_id)
            assert row is not None and row.exit_id is None and row.quantity == QUANTITY * factor

    asyncio.run(scenario())
