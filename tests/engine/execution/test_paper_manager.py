"""The OrderManager on the paper broker: fills at the next tick with slippage, partial fills,
simulated GTT exits."""

from __future__ import annotations

from sqlalchemy import Engine

from engine.brokers.paper import PaperBroker
from engine.clock import SteppedClock
from engine.execution import OrderManager, exit_request_for, make_client_order_id
from engine.models import ExitStatus, Instrument, OrderIntent, OrderStatus, Side, Tick
from engine.storage.journal import journal_store
from engine.storage.memory import MemoryDatabase
from tests.engine.execution.conftest import FAST_RETRY, TRADING_DAY, open_position


async def _tick(broker: PaperBroker, clock: SteppedClock, instrument: Instrument, price: float) -> None:
    clock.advance(1)
    await broker.on_tick(Tick(instrument.instrument_key, price, clock.now_ms()))


def _buy(instrument: Instrument, quantity: int = 10) -> OrderIntent:
    return OrderIntent(make_client_order_id(TRADING_DAY, "paper"), instrument, Side.BUY, quantity)


async def test_market_order_fills_at_the_next_tick_with_slippage_and_records_the_fill(
    paper_manager: OrderManager, paper: PaperBroker, clock: SteppedClock, instrument: Instrument
) -> None:
    await _tick(paper, clock, instrument, 100.0)
    order = await paper_manager.submit(_buy(instrument))
    assert order.status is OrderStatus.OPEN  # not at the price that made us decide
    await _tick(paper, clock, instrument, 101.0)
    order = await paper_manager.refresh(order.client_order_id)
    assert order.status is OrderStatus.FILLED
    assert order.average_price == 101.15  # 101 + 10 bps, rounded up to the tick grid
    fills = paper_manager.journal.fills(order.client_order_id)
    assert [(f.quantity, f.price) for f in fills] == [(10, 101.15)]


async def test_partial_fills_go_through_partially_filled(
    db: Engine, clock: SteppedClock, instrument: Instrument
) -> None:
    # a 5 % market protection: the MARKET buy fills up to 105 (the default 2 % would stop it at 102)
    paper = PaperBroker(clock, slippage_bps=0.0, partial_fill_ratio=0.4, market_protection=5.0)
    manager = OrderManager(paper, db, clock, trading_day=TRADING_DAY, retry=FAST_RETRY)
    order = await manager.submit(_buy(instrument, 10))
    seen = []
    for price in (100.0, 102.0, 104.0):
        await _tick(paper, clock, instrument, price)
        order = await manager.refresh(order.client_order_id)
        seen.append((order.status, order.filled_quantity))
    assert seen == [(OrderStatus.PARTIALLY_FILLED, 4), (OrderStatus.PARTIALLY_FILLED, 8), (OrderStatus.FILLED, 10)]
    assert order.average_price == (4 * 100 + 4 * 102 + 2 * 104) / 10
    assert sum(f.quantity for f in manager.journal.fills(order.client_order_id)) == 10
    assert [s.value for s in (OrderStatus.PARTIALLY_FILLED,)] == ["PARTIALLY_FILLED"]


async def test_simulated_gtt_stop_fires_and_is_settled_once(
    paper_manager: OrderManager, paper: PaperBroker, clock: SteppedClock, instrument: Instrument
) -> None:
    await paper_manager.submit(_buy(instrument))
    await _tick(paper, clock, instrument, 100.0)
    request = exit_request_for(instrument, 10, stop=95.0, target=110.0, last_price=100.0, tag="PAPEREXIT1")
    placed = await paper_manager.place_exit(request)
    assert await paper_manager.place_exit(request) == placed  # idempotent on the tag
    await _tick(paper, clock, instrument, 96.0)
    assert await paper_manager.sync_exits() == []
    await _tick(paper, clock, instrument, 94.9)
    settled = await paper_manager.sync_exits()
    assert [(e.status, e.exit_price) for e in settled] == [(ExitStatus.TRIGGERED_STOP, 94.8)]  # 94.9 - 10 bps
    assert await paper.positions() == []
    assert await paper_manager.sync_exits() == []


async def test_paper_broker_restores_positions_and_exits_from_the_journal(
    paper_manager: OrderManager, paper: PaperBroker, clock: SteppedClock, db: Engine, instrument: Instrument
) -> None:
    await paper_manager.submit(_buy(instrument))
    await _tick(paper, clock, instrument, 100.0)
    await paper_manager.refresh(_buy(instrument).client_order_id)
    position_id = open_position(db, instrument, 10)
    placed = await paper_manager.place_exit(
        exit_request_for(instrument, 10, stop=95.0, target=110.0, last_price=100.0, tag="PAPEREXIT2"),
        position_id=position_id)
    restarted = PaperBroker(clock, db=db)
    await restarted.connect()
    assert [(p.quantity, p.average_price) for p in await restarted.positions()] == [(10, 100.1)]
    assert [(e.exit_id, e.status) for e in await restarted.list_exits()] == [(placed.exit_id, ExitStatus.ACTIVE)]
    report = await OrderManager(restarted, db, clock, trading_day=TRADING_DAY).reconcile()
    assert report.kinds() == []


async def test_on_a_memory_database_the_journal_and_the_restore_need_no_sql(
    clock: SteppedClock, instrument: Instrument
) -> None:
    memory = MemoryDatabase()
    paper = PaperBroker(clock, slippage_bps=10.0)
    manager = OrderManager(paper, memory, clock, trading_day=TRADING_DAY, retry=FAST_RETRY)
    order = await manager.submit(_buy(instrument))
    await _tick(paper, clock, instrument, 100.0)
    assert (await manager.refresh(order.client_order_id)).status is OrderStatus.FILLED
    placed = await manager.place_exit(
        exit_request_for(instrument, 10, stop=95.0, target=110.0, last_price=100.0, tag="PAPEREXIT4"))
    assert [row.exit_id for row in manager.journal.gtts(active_only=True)] == [placed.exit_id]
    assert [f.quantity for f in journal_store(memory).fills(order.client_order_id)] == [10]
    restarted = PaperBroker(clock, slippage_bps=10.0, db=memory)
    await restarted.connect()
    assert [(p.quantity, p.average_price) for p in await restarted.positions()] == [(10, 100.1)]
    assert [(e.exit_id, e.status) for e in await restarted.list_exits()] == [(placed.exit_id, ExitStatus.ACTIVE)]
    await _tick(restarted, clock, instrument, 94.9)
    settled = await OrderManager(restarted, memory, clock, trading_day=TRADING_DAY).sync_exits()
    assert [(e.exit_id, e.status, e.exit_price) for e in settled] == [(placed.exit_id, ExitStatus.TRIGGERED_STOP, 94.8)]
    assert manager.journal.gtts(active_only=True) == []


async def test_cancelling_an_exit_that_already_fired_raises_and_leaves_it_to_sync(
    paper_manager: OrderManager, paper: PaperBroker, clock: SteppedClock, instrument: Instrument
) -> None:
    import pytest

    from engine.brokers.base import OrderRejected

    await paper_manager.submit(_buy(instrument))
    await _tick(paper, clock, instrument, 100.0)
    placed = await paper_manager.place_exit(
        exit_request_for(instrument, 10, stop=95.0, target=110.0, last_price=100.0, tag="PAPEREXIT3"))
    await _tick(paper, clock, instrument, 111.0)
    with pytest.raises(OrderRejected):
        await paper_manager.cancel_exit(placed.exit_id)
    assert paper_manager.journal.gtt(placed.exit_id).status == "ACTIVE"  # type: ignore[union-attr]
    settled = await paper_manager.sync_exits()
    assert [(e.status, e.exit_price) for e in settled] == [(ExitStatus.TRIGGERED_TARGET, 110.85)]
