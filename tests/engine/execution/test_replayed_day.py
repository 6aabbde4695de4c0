"""A replayed session end to end with AUTOTRADER_BROKER=zerodha-sandbox: the real
adapter and kiteconnect client against the embedded loopback Kite server, fed by the ticks.

Ticks are derived from 5-minute bars (open, then low/high in the bar's direction, then close), so
every price stays inside its bar's real range."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from engine.brokers.factory import make_broker
from engine.brokers.zerodha.sandbox import SandboxZerodhaBroker
from engine.clock import SteppedClock
from engine.execution import OrderManager, exit_request_for, make_client_order_id
from engine.models import IST, ExitStatus, Instrument, OrderIntent, OrderPurpose, OrderStatus, Side, Tick
from engine.settings import Credentials, load_settings
from engine.storage.db import session_scope
from engine.storage.tables import PositionRow
from tests.engine.execution.conftest import TRADING_DAY, open_position

INSTRUMENTS = [Instrument(f"NSE_EQ|INE00000000{i}", symbol, f"INE00000000{i}", tick_size=0.05)
               for i, symbol in enumerate(["RALLY", "SLIDE", "FLAT"])]
# (open, high, low, close) per 5-minute bar from 15:00: RALLY rises, SLIDE falls, FLAT stays put.
DRIFT = {"RALLY": 0.4, "SLIDE": -0.4, "FLAT": 0.0}


def _ticks() -> list[Tick]:
    ticks = []
    start = datetime(2024, 6, 4, 15, 0, tzinfo=IST)
    for bar in range(6):
        for instrument in INSTRUMENTS:
            open_ = 100.0 + DRIFT[instrument.symbol] * bar
            close = open_ + DRIFT[instrument.symbol]
            high, low = max(open_, close) + 0.1, min(open_, close) - 0.1
            path = [open_, low, high, close] if close >= open_ else [open_, high, low, close]
            for step, price in enumerate(path):
                moment = start + timedelta(minutes=5 * bar, seconds=60 * step + 1)
                ticks.append(Tick(instrument.instrument_key, round(price, 2), int(moment.timestamp() * 1000)))
    return sorted(ticks, key=lambda tick: tick.ltt_ms)


async def test_replayed_session_against_the_loopback_kite_server(db: Engine) -> None:
    clock = SteppedClock(datetime(2024, 6, 4, 15, 0, tzinfo=IST))
    settings = load_settings(broker="zerodha-sandbox", database_url=str(db.url))
    broker = make_broker(settings, Credentials(), clock=clock, instruments=INSTRUMENTS)
    assert isinstance(broker, SandboxZerodhaBroker)
    await broker.connect()
    manager = OrderManager(broker, db, clock, trading_day=TRADING_DAY)
    by_key = {i.instrument_key: i for i in INSTRUMENTS}
    entries: dict[str, str] = {}
    positions: dict[str, int] = {}
    settled: list[tuple[str, ExitStatus]] = []
    try:
        for tick in _ticks():
            clock.set(tick.time)
            await broker.on_tick(tick)
            instrument = by_key[tick.instrument_key]
            if tick.time.time() >= datetime(2024, 6, 4, 15, 10).time() and instrument.symbol not in entries:
                intent = OrderIntent(make_client_order_id(TRADING_DAY, instrument.symbol), instrument, Side.BUY, 10)
                order = await manager.submit(intent)
                entries[instrument.symbol] = order.client_order_id
                await broker.on_tick(tick)  # the [paper] fill model fills at the next tick, not the deciding one
                order = await manager.refresh(order.client_order_id)
                assert order.status is OrderStatus.FILLED
                positions[instrument.symbol] = open_position(db, instrument, 10, client_order_id=order.client_order_id)
                await manager.place_exit(exit_request_for(
                    instrument, 10, stop=order.average_price * 0.99, target=order.average_price * 1.01,
                    last_price=tick.ltp, tag=make_client_order_id(TRADING_DAY, instrument.symbol, OrderPurpose.EXIT)),
                    position_id=positions[instrument.symbol])
            for exit_order in await manager.sync_exits():
                settled.append((exit_order.instrument_key, exit_order.status))
                with session_scope(db) as session:  # what the portfolio does with a settled exit
                    row = session.get(PositionRow, next(p for s, p in positions.items()
                                                        if by_key[exit_order.instrument_key].symbol == s))
                    assert row is not None
                    row.status = "CLOSED"
                    session.add(row)
        sandbox_orders = broker.sandbox.orders()
        for symbol, client_order_id in entries.items():
            assert len([o for o in sandbox_orders if o["tag"] == client_order_id]) == 1, symbol
        assert sorted((by_key[k].symbol, s) for k, s in settled) == [
            ("RALLY", ExitStatus.TRIGGERED_TARGET), ("SLIDE", ExitStatus.TRIGGERED_STOP)]
        assert len(sandbox_orders) == 5  # three entries, two fired exit legs
        report = await manager.reconcile()
        assert report.clean, report.differences
        held = {p.instrument_key: p.quantity for p in await broker.positions()}
        assert held == {INSTRUMENTS[2].instrument_key: 10}
    finally:
        await broker.close()
