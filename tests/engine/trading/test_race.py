"""The feed and the entry window at once: a tick batch arrives while an entry's submit waits for the
broker's answer (the real adapters send from a thread, so the answer can come late)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from engine.brokers.paper import PaperBroker
from engine.models import Order, OrderIntent
from engine.storage.tables import OrderRow, PositionRow
from engine.strategy.base import Strategy
from tests.engine.strategy.support import RELIANCE, TCS, AlwaysLong, AlwaysLongConfig, at, tick
from tests.engine.test_trader import DAY, Rig, feed, make_rig, rows


class GatedBroker(PaperBroker):
    """The paper broker whose first `place_order` reaches the venue at once but whose answer waits
    until the test sets `release`; counts the orders placed per client_order_id."""

    placed: Counter[str]
    entered: asyncio.Event
    release: asyncio.Event

    def arm(self) -> None:
        self.placed = Counter()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def place_order(self, intent: OrderIntent) -> Order:
        order = await super().place_order(intent)
        self.placed[intent.client_order_id] += 1
        if not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
        return order


def gated_rig(tmp_path: Path, strategy: Strategy | None = None) -> tuple[Rig, GatedBroker]:
    rig = make_rig(tmp_path, instruments=[RELIANCE, TCS],
                   strategy=strategy or AlwaysLong(AlwaysLongConfig(min_price=1.0)))
    broker = GatedBroker(rig.clock, slippage_bps=5.0, instruments=rig.instruments, db=rig.db)
    broker.arm()
    rig.broker = broker
    return rig, broker


async def test_a_tick_batch_during_a_slow_submit_neither_raises_nor_drops_the_windows_other_entries(
    tmp_path: Path,
) -> None:
    rig, broker = gated_rig(tmp_path)
    engine = rig.engine(concurrent=True)
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 200.0), (TCS, 100.0))
    await engine.drain()
    window = asyncio.create_task(engine.execute_entry_window())
    await asyncio.wait_for(broker.entered.wait(), 5)  # RELIANCE (score 200) is at the broker, unanswered
    rig.clock.set(at(DAY, 15, 10, 5))
    await engine.on_ticks([tick(RELIANCE, 200.0, rig.clock.now()), tick(TCS, 100.0, rig.clock.now())])
    # the batch is handled while the submit still waits: the paper venue filled both entries on it
    for _ in range(100):
        await asyncio.sleep(0)
    assert not broker.release.is_set()
    assert [o.status.value for o in await broker.list_orders()] == ["FILLED", "FILLED"]
    broker.release.set()
    decisions = await asyncio.wait_for(window, 5)
    await asyncio.wait_for(engine.drain(), 5)
    await feed(engine, rig.clock, 15, 10, 10, (RELIANCE, 200.0), (TCS, 100.0))  # the next poll settles both
    await asyncio.wait_for(engine.drain(), 5)
    assert [(d.symbol, d.approved) for d in decisions] == [("RELIANCE", True), ("TCS", True)]
    entries = {o.symbol: o for o in rows(rig.db, OrderRow) if o.purpose == "ENTRY"}
    assert sorted(entries) == ["RELIANCE", "TCS"]  # the window's other decision was sent too
    assert [entries[s].status for s in ("RELIANCE", "TCS")] == ["FILLED", "FILLED"]
    assert broker.placed == {entries["RELIANCE"].client_order_id: 1, entries["TCS"].client_order_id: 1}
    assert sorted((p.symbol, p.status) for p in rows(rig.db, PositionRow)) == [("RELIANCE", "OPEN"), ("TCS", "OPEN")]
    assert engine.pending == {}
    assert (engine.broker_errors, engine.command_errors) == (0, 0)


async def test_in_stepped_mode_the_tick_batch_waits_for_the_owner_and_nothing_is_lost(tmp_path: Path) -> None:
    rig, broker = gated_rig(tmp_path)
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 200.0), (TCS, 100.0))
    window = asyncio.create_task(engine.execute_entry_window())
    await asyncio.wait_for(broker.entered.wait(), 5)
    rig.clock.set(at(DAY, 15, 10, 5))
    await engine.on_ticks([tick(RELIANCE, 200.0, rig.clock.now()), tick(TCS, 100.0, rig.clock.now())])
    assert [o.status.value for o in await broker.list_orders()] == ["OPEN"]  # queued behind the owner
    broker.release.set()
    decisions = await asyncio.wait_for(window, 5)
    await engine.drain()
    assert [(d.symbol, d.approved) for d in decisions] == [("RELIANCE", True), ("TCS", True)]
    assert sorted(broker.placed.values()) == [1, 1]
    assert sorted(p.symbol for p in rows(rig.db, PositionRow)) == ["RELIANCE", "TCS"]
    assert engine.pending == {} and (engine.broker_errors, engine.command_errors) == (0, 0)
