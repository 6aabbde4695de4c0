"""Instruments held outside today's universe: the engine marks and guards their positions, never enters them."""

from __future__ import annotations

from pathlib import Path

from engine.execution.manager import OrderManager
from engine.trader import TradingEngine
from tests.engine.strategy.support import RELIANCE, TCS, AlwaysLong, AlwaysLongConfig, seeded_indicators
from tests.engine.test_trader import DAY, SESSION, feed, make_rig


async def test_a_watch_only_instrument_never_becomes_a_candidate(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, instruments=[RELIANCE, TCS], strategy=AlwaysLong(AlwaysLongConfig(min_price=1.0)))

    indicators = {i.symbol: seeded_indicators(i, DAY) for i in rig.instruments}
    manager = OrderManager(rig.broker, rig.db, rig.clock, trading_day=DAY)
    engine = TradingEngine(rig.settings, rig.clock, rig.instruments, indicators, rig.strategy, manager, rig.db, DAY,
                           rig.broker, session=SESSION, watch_only=frozenset({TCS.instrument_key}))
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0), (TCS, 100.0))
    assert list(engine.candidates) == [RELIANCE.instrument_key]
    [decision] = await engine.execute_entry_window()
    assert decision.setup.symbol == "RELIANCE"
