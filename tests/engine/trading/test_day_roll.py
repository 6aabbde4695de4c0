"""`TradingEngine.start_day` (one engine through a backtest's days) trades exactly as a new engine per
day resumed from the same database and venue does (what a live session builds)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from engine.execution.manager import OrderManager
from engine.indicators.multitimeframe import InstrumentIndicators
from engine.strategy.window import SessionHours
from engine.trader import TradingEngine
from tests.engine.strategy.support import RELIANCE, AlwaysLong, AlwaysLongConfig, at, seeded_indicators, tick
from tests.engine.test_trader import Rig, make_rig

DAYS = (date(2024, 6, 4), date(2024, 6, 5), date(2024, 6, 6))
# (hour, minute, price) of RELIANCE each day: an entry on each, held overnight, then a GTT's stop (day two)
# and a GTT's target (day three)
PRICES = {DAYS[0]: [(14, 0, 100.0), (15, 10, 100.0), (15, 11, 100.0), (15, 20, 101.0)],
          DAYS[1]: [(9, 16, 99.0), (11, 0, 94.9), (11, 5, 94.9), (15, 10, 98.0)],
          DAYS[2]: [(9, 16, 100.0), (15, 10, 100.0), (15, 11, 100.0), (15, 20, 112.0), (15, 21, 112.0)]}


def _engine(rig: Rig, day: date, indicators: dict[str, InstrumentIndicators]) -> TradingEngine:
    return TradingEngine(rig.settings, rig.clock, rig.instruments, indicators, rig.strategy,
                         OrderManager(rig.broker, rig.db, rig.clock, trading_day=day), rig.db, day, rig.broker,
                         session=SessionHours(at(day, 9, 15), at(day, 15, 30)))


async def _run(tmp_path: Path, *, roll: bool) -> list[Any]:
    rig = make_rig(tmp_path, strategy=AlwaysLong(AlwaysLongConfig(min_price=1.0)))
    indicators = {RELIANCE.symbol: seeded_indicators(RELIANCE, DAYS[0])}
    engine: TradingEngine | None = None
    results: list[Any] = []
    for day in DAYS:
        rig.clock.set(at(day, 9, 15))
        if engine is not None and roll:
            await engine.start_day(day, OrderManager(rig.broker, rig.db, rig.clock, trading_day=day),
                                   session=SessionHours(at(day, 9, 15), at(day, 15, 30)))
        else:
            engine = _engine(rig, day, indicators)
            await engine.resume()
        for hour, minute, price in PRICES[day]:
            rig.clock.set(at(day, hour, minute))
            if (hour, minute) == (15, 10):
                await engine.on_ticks([tick(RELIANCE, price, rig.clock.now())])
                rig.clock.set(at(day, 15, 10, 30))
                results.append([(d.approved, d.quantity) for d in await engine.execute_entry_window()])
                continue
            await engine.on_ticks([tick(RELIANCE, price, rig.clock.now())])
        summary = await engine.end_of_day()
        results.append(summary)
        results.append([(t.exit_reason, t.exit_price, t.net_pnl) for t in engine.positions.trades_of(day)])
    return results


async def test_one_engine_rolled_over_the_days_trades_as_a_new_engine_a_day(tmp_path: Path) -> None:
    rolled = await _run(tmp_path / "rolled", roll=True)
    fresh = await _run(tmp_path / "fresh", roll=False)
    assert rolled == fresh
    trades = [trade for result in rolled[2::3] for trade in result]
    assert [reason for reason, _, _ in trades] == ["stop (GTT)", "target (GTT)"]
