"""Positions sold outside autotrader (the paper broker and the Kite sandbox alike): reconciliation reports
them, the engine books their trades, and their P&L reaches the risk ledger like any trade's."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from engine.clock import SteppedClock
from engine.execution import OrderManager
from engine.models import Instrument, OrderIntent, OrderStatus, Side
from engine.settings import load_settings
from engine.storage.positions import SqlPositionStore
from engine.strategy.window import SessionHours
from engine.trader import TradingEngine
from tests.engine.execution.conftest import FAST_RETRY, TRADING_DAY, open_position
from tests.engine.execution.test_reconcile import Venue, _entry
from tests.engine.strategy.support import AlwaysLong, seeded_indicators


@pytest.fixture(params=["paper", "kite-sandbox"])
def venue(request: pytest.FixtureRequest, clock: SteppedClock, instrument: Instrument) -> Venue:
    if request.param == "paper":
        return Venue(request.getfixturevalue("paper"), clock, instrument)
    return Venue(request.getfixturevalue("kite"), clock, instrument, request.getfixturevalue("sandbox"))


async def _sell_by_hand(venue: Venue, quantity: int, price: float) -> float:
    """Sell at the market outside autotrader; returns the broker's average price of that sale."""
    await venue.price(price)
    if venue.sandbox is not None:
        venue.sandbox.place_manual_order(venue.instrument.symbol, "SELL", quantity)
    else:  # a tag the journal never wrote
        await venue.broker.place_order(OrderIntent("BYHAND2", venue.instrument, Side.SELL, quantity))
    await venue.price(price)
    sales = [f for f in await venue.broker.fills() if f.side is Side.SELL]  # type: ignore[union-attr]
    return sum(f.price * f.quantity for f in sales) / sum(f.quantity for f in sales)


async def _engine_holding_ten(venue: Venue, db: Engine, clock: SteppedClock) -> TradingEngine:
    """10 RELIANCE bought at 100 (stop 95), held by a running engine."""
    instrument = venue.instrument
    manager = OrderManager(venue.broker, db, clock, trading_day=TRADING_DAY, retry=FAST_RETRY)
    await venue.price(100.0)
    entry = await manager.submit(_entry(instrument))
    await venue.price(100.0)
    assert (await manager.refresh(entry.client_order_id)).status is OrderStatus.FILLED
    open_position(db, instrument, 10, client_order_id=entry.client_order_id)
    engine = TradingEngine(load_settings(), clock, [instrument], {instrument.symbol: seeded_indicators(
        instrument, TRADING_DAY)}, AlwaysLong(), manager, db, TRADING_DAY, venue.broker,
        session=SessionHours(clock.now().replace(hour=9, minute=15), clock.now().replace(hour=15, minute=30)),
        exits_at_broker=False)
    await engine.resume()
    return engine


async def test_a_position_closed_by_hand_is_closed_with_a_trade_whose_pnl_reaches_the_ledger(
    venue: Venue, db: Engine, clock: SteppedClock
) -> None:
    engine = await _engine_holding_ten(venue, db, clock)
    sold_at = await _sell_by_hand(venue, 10, 104.0)
    report = await engine.reconcile()
    assert "POSITION_CLOSED" in report.kinds()
    assert engine.positions.open == {}
    [trade] = SqlPositionStore(db).trades_of(TRADING_DAY)
    assert (trade.quantity, trade.exit_reason) == (10, "closed_by_hand")
    assert trade.exit_price == pytest.approx(sold_at, abs=0.01) and trade.exit_price > 103
    assert trade.gross_pnl == pytest.approx(10 * (trade.exit_price - 100.0)) and trade.net_pnl < trade.gross_pnl
    assert engine.ledger.realized_pnl == round(trade.net_pnl, 2)
    assert SqlPositionStore(db).open_positions() == []
    again = await engine.reconcile()  # applied once: no second trade
    assert "POSITION_CLOSED" not in again.kinds() and len(SqlPositionStore(db).trades_of(TRADING_DAY)) == 1


async def test_a_position_sold_by_hand_in_part_is_reduced_with_a_trade_of_the_part_sold(
    venue: Venue, db: Engine, clock: SteppedClock
) -> None:
    engine = await _engine_holding_ten(venue, db, clock)
    sold_at = await _sell_by_hand(venue, 4, 98.0)
    report = await engine.reconcile()
    assert "POSITION_QUANTITY" in report.kinds()
    [left] = SqlPositionStore(db).open_positions()
    assert left.quantity == 6 == engine.positions.open[venue.instrument.instrument_key].quantity
    [trade] = SqlPositionStore(db).trades_of(TRADING_DAY)
    assert (trade.quantity, trade.exit_reason) == (4, "closed_by_hand")
    assert trade.exit_price == pytest.approx(sold_at, abs=0.01) and trade.net_pnl < 0
    assert engine.ledger.realized_pnl == round(trade.net_pnl, 2)
    assert "POSITION_QUANTITY" not in (await engine.reconcile()).kinds()
