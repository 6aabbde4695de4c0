"""The closed daily bar reaches a strategy's `on_bar` (its setup recorded EXPIRED, after the window); a
strategy without the hook costs no snapshot of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from engine.indicators.multitimeframe import InstrumentIndicators
from engine.indicators.snapshot import IndicatorSnapshot
from engine.models import Bar, Instrument, Setup, Tick
from engine.storage.tables import SetupRow
from tests.engine.strategy.support import RELIANCE, AlwaysLong, AlwaysLongConfig
from tests.engine.test_trader import DAY, feed, make_rig, rows


class LongOnTheClose(AlwaysLong):
    """No setup on ticks; one on every closed daily bar at its close."""

    bars: ClassVar[list[Bar]] = []

    def on_tick(self, instrument: Instrument, tick: Tick, snapshot: IndicatorSnapshot, **kwargs: Any) -> Setup | None:
        return None

    def on_bar(self, instrument: Instrument, bar: Bar, snapshot: IndicatorSnapshot, **kwargs: Any) -> Setup | None:
        LongOnTheClose.bars.append(bar)
        at_close = Tick(instrument.instrument_key, bar.close, int(bar.ts.timestamp() * 1000))
        return self.setup(instrument, at_close, score=1.0, reason="on the close")


async def _close_the_day(tmp_path: Path, strategy: AlwaysLong) -> list[tuple[str, str]]:
    rig = make_rig(tmp_path, strategy=strategy)
    engine = rig.engine()
    await feed(engine, rig.clock, 10, 0, 0, (RELIANCE, 101.0))
    await feed(engine, rig.clock, 15, 29, 0, (RELIANCE, 102.0))
    await engine.end_of_day()
    return [(row.status, row.status_reason) for row in rows(rig.db, SetupRow)]


async def test_a_strategys_on_bar_sees_the_closed_bar_and_its_setup_is_recorded_expired(tmp_path: Path) -> None:
    LongOnTheClose.bars = []
    recorded = await _close_the_day(tmp_path, LongOnTheClose(AlwaysLongConfig(min_price=1.0)))
    [bar] = LongOnTheClose.bars
    assert (bar.day, bar.open, bar.high, bar.close) == (DAY, 101.0, 102.0, 102.0)
    assert recorded == [("EXPIRED", "found on the closed daily bar, after the window")]


async def test_without_an_on_bar_hook_the_closed_bar_takes_no_snapshot(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rig = make_rig(tmp_path, strategy=AlwaysLong(AlwaysLongConfig(min_price=1_000.0)))  # never a setup on a tick
    engine = rig.engine()
    assert not engine.strategy.has_bar_hook
    await feed(engine, rig.clock, 10, 0, 0, (RELIANCE, 101.0))
    snapshots = 0
    snapshot = InstrumentIndicators.snapshot

    def counted(self: InstrumentIndicators) -> IndicatorSnapshot:
        nonlocal snapshots
        snapshots += 1
        return snapshot(self)

    monkeypatch.setattr(InstrumentIndicators, "snapshot", counted)
    summary = await engine.end_of_day()
    assert (summary.setups, snapshots) == (0, 0)
