"""The hot path's shortcuts change nothing that matters: candidates looked for once per slice of
time, or only at the window (a daily-bar backtest), decide the entry window exactly as a look on every
tick does, and CANDIDATE rows written in batches lose nothing a restart needs."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.brokers.paper import PaperBroker
from engine.models import Instrument, MarketStatus, OrderStatus, Setup, Tick
from engine.storage.tables import OrderRow, SetupRow
from engine.trading import entries
from tests.engine.strategy.support import LOTTY, RELIANCE, TCS, AlwaysLong, AlwaysLongConfig
from tests.engine.test_trader import feed, make_rig, rows

UNIVERSE = [RELIANCE, TCS, LOTTY]


class CountingLong(AlwaysLong):
    """AlwaysLong (a candidate at or above `min_price`) that counts its calls."""

    calls = 0

    def on_tick(self, instrument: Instrument, tick: Tick, snapshot: Any, **kwargs: Any) -> Setup | None:
        CountingLong.calls += 1
        return super().on_tick(instrument, tick, snapshot, **kwargs)


def price_paths(seed: int) -> list[list[float]]:
    """One price per instrument every 3 s from 15:00:00 to 15:09:57, wandering across 100."""
    rng = random.Random(seed)
    prices = {i.symbol: 100.0 for i in UNIVERSE}
    paths = []
    for _ in range(200):
        for symbol in prices:
            prices[symbol] = round(min(104.0, max(96.5, prices[symbol] + rng.choice((-0.4, -0.2, 0.2, 0.4)))), 2)
        paths.append([prices[i.symbol] for i in UNIVERSE])
    return paths


async def run_day(tmp_path: Path, paths: list[list[float]], refresh_ms: int | None = entries.REFRESH_MS
                  ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    """The decisions of the 15:10 window after `paths`, the decided setups rows, and the strategy's calls."""
    CountingLong.calls = 0
    rig = make_rig(tmp_path, instruments=UNIVERSE, strategy=CountingLong(AlwaysLongConfig(min_price=100.0)))
    engine = rig.engine(refresh_ms=refresh_ms)
    for n, path in enumerate(paths):
        await feed(engine, rig.clock, 15, n * 3 // 60, n * 3 % 60, *zip(UNIVERSE, path, strict=True))
    calls = CountingLong.calls
    await feed(engine, rig.clock, 15, 10, 0)
    decisions = [(d.symbol, d.approved, d.reason, d.quantity, d.limit_price, d.setup.entry, d.setup.stop,
                  d.setup.target, d.setup.score) for d in await engine.execute_entry_window()]
    decided = sorted((r.symbol, r.status, r.status_reason, r.quantity, r.entry, r.stop, r.target, r.rules_json)
                     for r in rows(rig.db, SetupRow) if r.status != "EXPIRED")
    return decisions, decided, calls


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_candidates_looked_for_per_slice_or_at_the_window_decide_it_as_a_look_on_every_tick(
        tmp_path: Path, seed: int) -> None:
    paths = price_paths(seed)
    decisions, decided, calls = await run_day(tmp_path / "sliced", paths)
    every_tick = await run_day(tmp_path / "every", paths, refresh_ms=1)  # ticks 3 s apart: a slice each
    at_window = await run_day(tmp_path / "window", paths, refresh_ms=None)
    assert decisions and (decisions, decided) == every_tick[:2] == at_window[:2]
    assert every_tick[2] == 3 * 200 and calls <= 3 * 21  # a look per 30 s slice (20 of them) and one at the window
    assert at_window[2] == 0  # none before the window; `run_day` counts the calls before it


async def test_candidate_rows_are_written_at_most_once_a_minute_and_all_before_an_entry(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, instruments=[RELIANCE, TCS], strategy=AlwaysLong(AlwaysLongConfig(min_price=1.0)))
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 9, 0, (RELIANCE, 100.0))
    assert [r.symbol for r in rows(rig.db, SetupRow)] == ["RELIANCE"]  # the first batch is written at once
    await feed(engine, rig.clock, 15, 9, 30, (TCS, 100.0))
    assert [r.symbol for r in rows(rig.db, SetupRow)] == ["RELIANCE"]  # TCS waits for the next minute
    assert list(engine.candidates) == [RELIANCE.instrument_key, TCS.instrument_key]

    rig.clock.set(rig.clock.now().replace(minute=10, second=0))
    decisions = await engine.execute_entry_window()
    assert [(d.symbol, d.approved) for d in decisions] == [("RELIANCE", True), ("TCS", True)]
    setups = {r.symbol: r for r in rows(rig.db, SetupRow)}
    entries_sent = rows(rig.db, OrderRow)
    assert {o.setup_id for o in entries_sent} == {setups["RELIANCE"].id, setups["TCS"].id}
    assert all(setups[s].status == "EXECUTED" and setups[s].client_order_id for s in ("RELIANCE", "TCS"))

    restarted = rig.engine()  # the process died after sending the entries: nothing of consequence was lost
    await feed(restarted, rig.clock, 15, 10, 5, (RELIANCE, 100.0), (TCS, 100.0))
    assert restarted.candidates == {} and await restarted.execute_entry_window() == []
    assert len(rows(rig.db, OrderRow)) == 2 and len(rows(rig.db, SetupRow)) == 2


async def test_a_candidate_lost_with_an_unwritten_batch_is_found_again_after_a_restart(tmp_path: Path) -> None:
    async def window_after(restart: bool) -> list[tuple[Any, ...]]:
        rig = make_rig(tmp_path / str(restart), instruments=[RELIANCE, TCS],
                       strategy=AlwaysLong(AlwaysLongConfig(min_price=1.0)))
        engine = rig.engine()
        await feed(engine, rig.clock, 15, 9, 0, (RELIANCE, 100.0))
        await feed(engine, rig.clock, 15, 9, 30, (TCS, 100.0))  # staged, not written yet
        if restart:
            engine = rig.engine()
            assert [r.symbol for r in rows(rig.db, SetupRow)] == ["RELIANCE"]
        await feed(engine, rig.clock, 15, 9, 40, (RELIANCE, 100.5), (TCS, 100.5))
        rig.clock.set(rig.clock.now().replace(minute=10, second=0))
        decisions = await engine.execute_entry_window()
        return [(d.symbol, d.approved, d.quantity, d.limit_price, d.setup.stop, d.setup.target) for d in decisions]

    assert await window_after(restart=True) == await window_after(restart=False)


async def test_a_setup_found_on_a_remembered_tick_is_recorded_when_the_market_closes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entries, "REFRESH_MS", 3_600_000)  # one look an hour: later ticks are only remembered
    rig = make_rig(tmp_path, strategy=AlwaysLong(AlwaysLongConfig(min_price=100.0)))
    engine = rig.engine()
    await feed(engine, rig.clock, 14, 0, 0, (RELIANCE, 99.0))
    await feed(engine, rig.clock, 14, 0, 10, (RELIANCE, 101.0))  # a candidate, not looked at yet
    await engine.on_market_status(MarketStatus.NORMAL_CLOSE)
    summary = await engine.end_of_day()
    assert summary.setups == 1 and [(r.status, r.entry) for r in rows(rig.db, SetupRow)] == [("EXPIRED", 101.0)]


class FeedCountingPaper(PaperBroker):
    """The paper broker counting how its prices arrive: batch feeds asked for, ticks awaited."""

    def __init__(self, *args: Any, with_feed: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.with_feed = with_feed
        self.feeds = self.awaited = 0

    def tick_feed(self) -> Callable[[Tick], None] | None:
        self.feeds += 1
        return super().tick_feed() if self.with_feed else None

    async def on_tick(self, tick: Tick) -> None:
        self.awaited += 1
        await super().on_tick(tick)


@pytest.mark.parametrize("with_feed", [True, False])
async def test_a_broker_with_a_tick_feed_takes_each_batch_without_a_coroutine_per_tick(tmp_path: Path,
                                                                                       with_feed: bool) -> None:
    """A broker's `tick_feed` is asked for once per batch and takes every known instrument's tick; a
    broker without one (None, the default) has `on_tick` awaited per tick. The fills are the same."""
    rig = make_rig(tmp_path, instruments=[RELIANCE, TCS], strategy=AlwaysLong(AlwaysLongConfig(min_price=1.0)))
    rig.broker = broker = FeedCountingPaper(rig.clock, slippage_bps=5.0, instruments=rig.instruments, db=rig.db,
                                            with_feed=with_feed)
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 9, 0, (RELIANCE, 100.0), (TCS, 200.0))
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0), (TCS, 200.0))
    await engine.execute_entry_window()
    unknown = Instrument("NSE_EQ|UNKNOWN", "UNKNOWN", "")
    await feed(engine, rig.clock, 15, 10, 5, (RELIANCE, 100.0), (TCS, 200.0), (unknown, 10.0))
    assert (broker.feeds, broker.awaited) == ((3, 0) if with_feed else (3, 6))
    assert sorted((o.instrument_key, o.status, o.average_price) for o in await broker.list_orders()) == [
        (RELIANCE.instrument_key, OrderStatus.FILLED, 100.05), (TCS.instrument_key, OrderStatus.FILLED, 200.1)]
