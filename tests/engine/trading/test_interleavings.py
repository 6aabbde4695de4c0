"""Random interleavings of tick batches, entry-window triggers and late or repeated broker answers,
on the concurrent engine: nothing raises and no order is ever placed twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.brokers.paper import PaperBroker
from engine.execution.manager import OrderManager
from engine.execution.reconcile import ReconcileReport
from engine.models import ExitOrder, ExitRequest, Order, OrderIntent
from engine.storage.tables import OrderRow, PositionRow
from engine.trading import TradingEngine
from engine.trading.events import Answer, Event, FundsAnswered, Reconciled
from tests.engine.strategy.support import (
    LOTTY,
    RELIANCE,
    TCS,
    AlwaysLong,
    AlwaysLongConfig,
    at,
    seeded_indicators,
    tick,
)
from tests.engine.test_trader import DAY, SESSION, make_rig, make_settings, rows

T = TypeVar("T")


class CountingBroker(PaperBroker):
    """The paper broker, counting the orders placed per client_order_id."""

    placed: Counter[str]

    async def place_order(self, intent: OrderIntent) -> Order:
        order = await super().place_order(intent)
        self.placed[intent.client_order_id] += 1
        return order


class LateAnswers:
    """The order manager whose calls reach the broker at once but whose answers wait until the test
    releases them (in any order); `open` lets every later answer through."""

    def __init__(self, manager: OrderManager) -> None:
        self.manager = manager
        self.waiting: list[asyncio.Event] = []
        self.open = False

    async def _late(self, call: Callable[[], Awaitable[T]]) -> T:
        result = await call()
        if not self.open:
            gate = asyncio.Event()
            self.waiting.append(gate)
            await gate.wait()
        return result

    def release(self, index: int) -> None:
        if self.waiting:
            self.waiting.pop(index % len(self.waiting)).set()

    def release_all(self) -> None:
        self.open = True
        for gate in self.waiting:
            gate.set()
        self.waiting.clear()

    async def submit(self, intent: OrderIntent, *, setup_id: int | None = None) -> Order:
        return await self._late(partial(self.manager.submit, intent, setup_id=setup_id))

    async def refresh(self, client_order_id: str) -> Order:
        return await self._late(partial(self.manager.refresh, client_order_id))

    async def cancel(self, client_order_id: str) -> Order:
        return await self._late(partial(self.manager.cancel, client_order_id))

    async def place_exit(self, request: ExitRequest, *, position_id: int | None = None) -> ExitOrder:
        return await self._late(partial(self.manager.place_exit, request, position_id=position_id))

    async def cancel_exit(self, exit_id: str) -> None:
        await self._late(partial(self.manager.cancel_exit, exit_id))

    async def sync_exits(self) -> list[ExitOrder]:
        return await self._late(self.manager.sync_exits)

    async def reconcile(self) -> ReconcileReport:
        return await self._late(self.manager.reconcile)


step: st.SearchStrategy[tuple[str, int, list[float]]] = st.one_of(
    st.tuples(st.just("ticks"), st.integers(1, 40), st.lists(st.floats(-6, 4), min_size=3, max_size=3)),
    st.tuples(st.just("window"), st.just(0), st.just([])),
    st.tuples(st.just("release"), st.integers(0, 20), st.just([])),
    st.tuples(st.just("repeat"), st.integers(0, 50), st.just([])),  # a broker answer delivered again
    st.tuples(st.just("yield"), st.integers(1, 30), st.just([])),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=4, max_size=40), flatten=st.booleans())
async def test_interleavings_never_raise_and_never_place_an_order_twice(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int, list[float]]], flatten: bool,
) -> None:
    settings_ = make_settings(risk={"max_daily_loss_pct": 0.3, "flatten_on_kill": flatten})
    instruments = [RELIANCE, TCS, LOTTY]
    rig = make_rig(tmp_path_factory.mktemp("mix"), settings_, instruments, AlwaysLong(AlwaysLongConfig(min_price=1.0)))
    broker = CountingBroker(rig.clock, slippage_bps=5.0, instruments=instruments, db=rig.db)
    broker.placed = Counter()
    orders = LateAnswers(OrderManager(broker, rig.db, rig.clock, trading_day=DAY))
    indicators = {i.symbol: seeded_indicators(i, DAY) for i in instruments}
    engine = TradingEngine(rig.settings, rig.clock, instruments, indicators, rig.strategy, orders, rig.db, DAY, broker,
                           session=SESSION, concurrent=True)
    answers: list[Event] = []
    post = engine.post

    def recording_post(event: Event) -> None:
        if isinstance(event, Answer) and not isinstance(event, FundsAnswered | Reconciled):
            answers.append(event)
        post(event)

    engine.post = recording_post  # type: ignore[method-assign]
    windows: list[asyncio.Task[Any]] = []
    prices = {RELIANCE: 100.0, TCS: 100.0, LOTTY: 100.0}

    async def ticks(seconds: float, moves: list[float]) -> None:
        rig.clock.advance(seconds)
        for instrument, move in zip(prices, moves, strict=True):
            prices[instrument] = max(5.0, instrument.round_price(prices[instrument] * (1 + move / 100)))
        await engine.on_ticks([tick(i, p, rig.clock.now()) for i, p in prices.items()])

    rig.clock.set(at(DAY, 15, 9, 59))
    await ticks(1, [0.0, 0.0, 0.0])  # 15:10: three candidates, the window is open
    for kind, number, moves in steps:
        if kind == "ticks":
            await ticks(number, moves)
        elif kind == "window":
            windows.append(asyncio.ensure_future(engine.execute_entry_window()))
        elif kind == "release":
            orders.release(number)
        elif kind == "repeat" and answers:
            engine.post(answers[number % len(answers)])
        for _ in range(number if kind == "yield" else 3):
            await asyncio.sleep(0)
    orders.release_all()
    await asyncio.wait_for(asyncio.gather(*windows), 10)
    for _ in range(3):  # then the prices fall through every stop: the exits settle
        await ticks(2, [-4.0, -4.0, -4.0])
        await asyncio.wait_for(engine.drain(), 10)
    await asyncio.wait_for(engine.end_of_day(), 10)

    event(f"entries placed: {len(broker.placed)}")
    event(f"answers repeated: {min(3, sum(1 for kind, *_ in steps if kind == 'repeat'))}+")
    event(f"positions closed: {sum(1 for p in rows(rig.db, PositionRow) if p.status == 'CLOSED')}")
    assert (engine.broker_errors, engine.command_errors) == (0, 0)
    assert all(count == 1 for count in broker.placed.values()), broker.placed
    entries = [o for o in rows(rig.db, OrderRow) if o.purpose == "ENTRY"]
    assert len({o.instrument_key for o in entries}) == len(entries)  # one entry per instrument and day
    positions = rows(rig.db, PositionRow)
    assert len({p.entry_client_order_id for p in positions}) == len(positions)  # one position per entry
    open_keys = [p.instrument_key for p in positions if p.status == "OPEN"]
    assert len(open_keys) == len(set(open_keys)) and set(open_keys) == set(engine.positions.open)
    filled = {o.client_order_id for o in entries if o.filled_quantity > 0 and o.status in ("FILLED", "CANCELLED")}
    assert filled == {p.entry_client_order_id for p in positions}  # every settled fill opened its position
