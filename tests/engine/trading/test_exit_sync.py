"""On a simulated venue the GTT sync asks the broker only after an exit changed there (the venue's
`exit_changes`), not on every batch of ticks once its timer is due; it settles the same exits."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from engine.models import ExitOrder
from tests.engine.strategy.support import RELIANCE, AlwaysLong, AlwaysLongConfig
from tests.engine.test_trader import feed, make_rig


async def test_the_exit_sync_asks_the_paper_venue_only_after_an_exit_changed(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, strategy=AlwaysLong(AlwaysLongConfig(min_price=1.0)))
    listed = 0
    get_exits = rig.broker.get_exits  # what the sync asks (the exits of the active GTTs)

    async def counted_get_exits(exit_ids: Collection[str]) -> list[ExitOrder]:
        nonlocal listed
        listed += 1
        return await get_exits(exit_ids)

    rig.broker.get_exits = counted_get_exits  # type: ignore[method-assign]
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    [decision] = await engine.execute_entry_window()
    assert decision.approved
    await feed(engine, rig.clock, 15, 10, 30, (RELIANCE, 100.0))  # the entry fills: a GTT protects it
    [position] = engine.positions.open.values()
    assert position.exit_id is not None and position.stop == 94.95

    before = listed
    for minute in range(12, 20):  # a minute apart (the sync's timer due each time), between stop and target
        await feed(engine, rig.clock, 15, minute, 0, (RELIANCE, 101.0))
    assert listed - before <= 1  # at most the first sync that sees the new GTT

    await feed(engine, rig.clock, 15, 21, 0, (RELIANCE, 94.95))  # the stop fires and its leg fills
    await feed(engine, rig.clock, 15, 22, 30, (RELIANCE, 94.95))
    assert listed - before >= 1 and engine.positions.open == {}
    [trade] = engine.positions.trades_of(rig.clock.now().date())
    assert trade.exit_reason == "stop (GTT)"
