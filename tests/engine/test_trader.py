"""The trading engine end to end on a stepped clock: real indicators, the real OrderManager and
the paper broker, an SQLite file database."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from engine.brokers.base import TemporaryBrokerError
from engine.brokers.paper import PaperBroker
from engine.clock import SteppedClock
from engine.execution.manager import OrderManager
from engine.models import Instrument, MarketStatus, Setup, Side, Tick
from engine.portfolio.charges import ChargeCalculator
from engine.settings import Settings, load_settings
from engine.storage import init_db, session_scope
from engine.storage.tables import GttRow, OrderRow, PositionRow, RiskLedgerRow, SetupRow, TradeRow
from engine.strategy.base import Strategy
from engine.strategy.window import SessionHours
from engine.trader import TradingEngine
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

DAY = date(2024, 6, 4)
SESSION = SessionHours(at(DAY, 9, 15), at(DAY, 15, 30))


def make_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {"strategy": {"name": "always_long", "validator": {"conditions": []}}}
    base.update(overrides)
    return load_settings(**base)


@dataclass
class Rig:
    settings: Settings
    clock: SteppedClock
    broker: PaperBroker
    db: Any
    instruments: list[Instrument]
    strategy: Strategy

    def engine(self, **options: Any) -> TradingEngine:
        """A TradingEngine as a (re)started process would build it: fresh indicators and manager."""
        indicators = {i.symbol: seeded_indicators(i, DAY) for i in self.instruments}
        manager = OrderManager(self.broker, self.db, self.clock, trading_day=DAY)
        return TradingEngine(self.settings, self.clock, self.instruments, indicators, self.strategy, manager, self.db,
                             DAY, self.broker, session=SESSION, **options)


def make_rig(tmp_path: Path, settings: Settings | None = None, instruments: list[Instrument] | None = None,
             strategy: Strategy | None = None) -> Rig:
    clock = SteppedClock(at(DAY, 9, 15))
    db = init_db(f"sqlite:///{tmp_path / 'engine.db'}")
    instruments = instruments or [RELIANCE]
    broker = PaperBroker(clock, slippage_bps=5.0, instruments=instruments, db=db)
    return Rig(settings or make_settings(), clock, broker, db, instruments, strategy or AlwaysLong())


async def feed(engine: TradingEngine, clock: SteppedClock, hh: int, mm: int, ss: int, *prices: tuple[Instrument, float]
               ) -> None:
    clock.set(at(DAY, hh, mm, ss))
    await engine.on_ticks([tick(i, p, clock.now()) for i, p in prices])


def rows(db: Any, table: Any) -> list[Any]:
    with session_scope(db) as session:
        return list(session.exec(select(table)).all())


async def test_candidates_wait_for_the_window_then_enter_with_a_gtt(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, instruments=[RELIANCE, TCS], strategy=AlwaysLong(AlwaysLongConfig(min_price=1.0)))
    engine = rig.engine()
    await feed(engine, rig.clock, 14, 0, 0, (RELIANCE, 100.0))
    assert list(engine.candidates) == [RELIANCE.instrument_key]
    assert [r.status for r in rows(rig.db, SetupRow)] == ["CANDIDATE"]
    assert await engine.execute_entry_window() == []  # 14:00: outside 15:10-15:25
    assert rows(rig.db, OrderRow) == []

    await feed(engine, rig.clock, 15, 9, 0, (TCS, 100.0))  # a candidate that is gone when the window runs
    await feed(engine, rig.clock, 15, 9, 30, (TCS, 0.5))
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    [decision] = await engine.execute_entry_window()
    # lowest_low_10 = 95 -> stop 94.95; target 100 + 2 * 5.05 = 110.10. Sized at the worst fill, the
    # LIMIT 100 * 1.005 = 100.50: 1% of 10,00,000 / (100.50 - 94.95) = 10,000 / 5.55 = 1801.8 -> 1801
    assert (decision.approved, decision.quantity, decision.limit_price, decision.setup.stop,
            decision.setup.target) == (True, 1801, 100.5, 94.95, 110.1)
    setup_row, gone = rows(rig.db, SetupRow)
    assert (setup_row.status, setup_row.quantity) == ("EXECUTED", 1801)
    assert (gone.symbol, gone.status) == ("TCS", "EXPIRED")
    assert gone.status_reason == "conditions no longer held when the entry window ran at 15:10:00"
    [order] = rows(rig.db, OrderRow)
    assert (order.side, order.quantity, order.purpose, order.setup_id) == ("BUY", 1801, "ENTRY", setup_row.id)
    assert (order.order_type, order.price) == ("LIMIT", 100.5)  # entry_limit_offset_pct 0.5: never pays more
    assert engine.ledger.risk_used == pytest.approx(9995.55)  # reserved at the limit: 1801 * 5.55

    await feed(engine, rig.clock, 15, 10, 5, (RELIANCE, 100.0))  # the paper broker fills on this tick
    [position] = rows(rig.db, PositionRow)
    assert (position.status, position.quantity, position.average_price) == ("OPEN", 1801, 100.05)  # 5 bps slippage
    # the actual initial risk replaces the reservation: 1801 * (100.05 - 94.95) = 1801 * 5.10
    assert engine.ledger.risk_used == pytest.approx(9185.10)
    [gtt] = rows(rig.db, GttRow)
    # LIMIT legs 0.5% beyond the triggers, down to the tick: 94.95 * 0.995 = 94.475 -> 94.45, 110.1 -> 109.5495 -> 109.5
    assert (gtt.stop_trigger, gtt.stop_limit, gtt.target_trigger, gtt.target_limit) == (94.95, 94.45, 110.1, 109.5)
    assert position.exit_id == gtt.exit_id
    assert json_rules(setup_row)[0]["name"] == "price_range"


def json_rules(row: SetupRow) -> list[dict[str, Any]]:
    import json

    return json.loads(row.rules_json)  # type: ignore[no-any-return]


async def test_stop_hit_settles_through_the_gtt_once_and_logs_the_trade(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    await engine.execute_entry_window()
    await feed(engine, rig.clock, 15, 10, 5, (RELIANCE, 100.0))
    await feed(engine, rig.clock, 15, 20, 0, (RELIANCE, 94.9))  # crosses the stop: the GTT fires at the broker
    await feed(engine, rig.clock, 15, 20, 5, (RELIANCE, 94.8))
    [trade] = rows(rig.db, TradeRow)
    # the stop leg (SELL LIMIT 94.45) fills at 94.9 less 5 bps = 94.85255 -> 94.85
    assert (trade.quantity, trade.entry_price, trade.exit_price, trade.exit_reason) == (1801, 100.05, 94.85,
                                                                                          "stop (GTT)")
    # gross 1801 * (94.85 - 100.05) = -9365.20. Bought and sold the same day: intraday charges (June 2024):
    # brokerage 20 + 20 (0.03 % capped), STT 0.025 % of the sell 42.71, NSE 0.00322 % of 3,51,014.90 11.30,
    # SEBI 0.35, stamp 0.003 % of the buy 5.41, GST 18 % of 51.65 = 9.30; total 109.06; net -9474.26
    gross, charges, net = ChargeCalculator.from_settings(rig.settings).trade_pnl(1801, 100.05, 94.85,
                                                                                entry_day=DAY, exit_day=DAY)
    assert (trade.gross_pnl, trade.charges, trade.net_pnl) == (gross, charges, net) == (-9365.2, 109.06, -9474.26)
    assert [p.status for p in rows(rig.db, PositionRow)] == ["CLOSED"]
    sells = [o for o in rows(rig.db, OrderRow) if o.side == "SELL"]
    assert len(sells) == 1  # the GTT's leg only: the engine never sold a second time
    summary = await engine.end_of_day()
    assert (summary.entries, summary.exits, summary.open_positions, summary.net_pnl) == (1, 1, 0, net)


async def test_a_restart_never_enters_twice(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    first = rig.engine()
    await feed(first, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    await first.execute_entry_window()  # submitted; the process dies before the fill

    second = rig.engine()
    await feed(second, rig.clock, 15, 11, 0, (RELIANCE, 100.2))  # resume() runs first, then the broker fills
    assert second.candidates == {}
    assert await second.execute_entry_window() == []
    third = rig.engine()
    await feed(third, rig.clock, 15, 12, 0, (RELIANCE, 101.0))
    assert await third.execute_entry_window() == []
    assert len([o for o in rows(rig.db, OrderRow) if o.purpose == "ENTRY"]) == 1
    [position] = rows(rig.db, PositionRow)
    assert position.quantity == 1801 and position.exit_id is not None
    assert len(rows(rig.db, GttRow)) == 1
    [ledger] = rows(rig.db, RiskLedgerRow)
    # filled at 100.20 + 5 bps = 100.2501, up to the tick 100.30: 1801 * (100.30 - 94.95) = 1801 * 5.35 = 9635.35
    assert ledger.risk_used == pytest.approx(9635.35) and ledger.entries == 1
    assert list(third.positions.open) == [RELIANCE.instrument_key]


async def test_an_entry_not_filled_in_the_window_is_cancelled_and_its_risk_released(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 24, 0, (RELIANCE, 100.0))
    [decision] = await engine.execute_entry_window()
    assert decision.approved and engine.ledger.risk_used > 0
    await feed(engine, rig.clock, 15, 24, 30, (RELIANCE, 101.0))  # above the 100.50 limit: no fill
    assert rows(rig.db, PositionRow) == []
    await feed(engine, rig.clock, 15, 25, 30, (RELIANCE, 101.0))  # window over: cancelled
    [order] = rows(rig.db, OrderRow)
    assert order.status == "CANCELLED" and engine.pending == {}
    assert engine.ledger.risk_used == 0.0
    assert rows(rig.db, PositionRow) == []


async def test_daily_risk_cap_and_score_order_across_instruments(tmp_path: Path) -> None:
    # cap 1.5% = 15,000: RELIANCE (score 200, 1% = 10,000 at risk) fits whole, TCS (score 100) is cut to 5,000
    settings = make_settings(risk={"daily_risk_cap_pct": 1.5})
    rig = make_rig(tmp_path, settings, [RELIANCE, TCS])
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 200.0), (TCS, 100.0))
    decisions = await engine.execute_entry_window()
    assert [(d.symbol, d.quantity) for d in decisions] == [("RELIANCE", 94), ("TCS", 906)]
    # at the LIMIT prices 200 * 1.005 = 201.00 and 100.50, stop 94.95: RELIANCE 10,000 / 106.05 = 94.29 -> 94
    # (reserves 94 * 106.05 = 9968.70); TCS 15,000 - 9968.70 = 5031.30 left / 5.55 = 906.5 -> 906 (5028.30)
    assert engine.ledger.risk_used == pytest.approx(9968.70 + 5028.30)
    assert engine.ledger.risk_used <= engine.ledger.daily_risk_cap


async def test_kill_switch_halts_entries_and_can_flatten(tmp_path: Path) -> None:
    settings = make_settings(risk={"max_daily_loss_pct": 0.5, "flatten_on_kill": True})
    rig = make_rig(tmp_path, settings)
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    await engine.execute_entry_window()
    await feed(engine, rig.clock, 15, 10, 5, (RELIANCE, 100.0))
    await feed(engine, rig.clock, 15, 11, 0, (RELIANCE, 97.0))  # 1801 * (97 - 100.05) = -5,493.05 < -0.5% of 10 lakh
    assert engine.kill_switch and "max daily loss 5000.00" in engine.kill_reason
    await feed(engine, rig.clock, 15, 11, 5, (RELIANCE, 97.0))  # the flattening sell fills
    [trade] = rows(rig.db, TradeRow)
    assert trade.exit_reason == "kill switch"
    assert [g.status for g in rows(rig.db, GttRow)] == ["CANCELLED"]
    assert engine.candidates == {} and await engine.execute_entry_window() == []  # no new candidates after the kill
    restarted = rig.engine()
    await restarted.resume()
    assert restarted.kill_switch


async def test_without_broker_exits_the_engine_sells_on_the_stop(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    indicators = {RELIANCE.symbol: seeded_indicators(RELIANCE, DAY)}
    manager = OrderManager(rig.broker, rig.db, rig.clock, trading_day=DAY)
    engine = TradingEngine(rig.settings, rig.clock, [RELIANCE], indicators, AlwaysLong(), manager, rig.db, DAY,
                           rig.broker, session=SESSION, exits_at_broker=False)
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    await engine.execute_entry_window()
    await feed(engine, rig.clock, 15, 10, 5, (RELIANCE, 100.0))
    assert rows(rig.db, GttRow) == []
    await feed(engine, rig.clock, 15, 20, 0, (RELIANCE, 94.9))  # engine sends a market sell
    await feed(engine, rig.clock, 15, 20, 5, (RELIANCE, 94.5))  # which fills here: 94.5 less 5 bps -> 94.45
    [trade] = rows(rig.db, TradeRow)
    assert (trade.exit_price, trade.exit_reason) == (94.45, "stop")


class Exploding(AlwaysLong):
    def on_tick(self, instrument: Instrument, tick: Tick, snapshot: Any, **kwargs: Any) -> Setup | None:
        raise RuntimeError("user bug")


async def test_strategy_errors_are_counted_and_the_session_goes_on(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, strategy=Exploding())
    engine = rig.engine()
    for minute in range(3):  # a minute apart: the strategy is asked once per instrument and 30-second slice
        await feed(engine, rig.clock, 15, 10 + minute, 0, (RELIANCE, 100.0))
    assert engine.strategy_errors == 3
    assert await engine.execute_entry_window() == []
    summary = await engine.end_of_day()
    assert summary.strategy_errors == 3 and summary.entries == 0


async def test_market_close_stops_candidates_and_end_of_day_expires_them(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    engine = rig.engine()
    await feed(engine, rig.clock, 14, 0, 0, (RELIANCE, 100.0))
    await engine.on_market_status(MarketStatus.NORMAL_CLOSE)
    assert engine.candidates == {}
    summary = await engine.end_of_day()
    assert summary.setups == 1
    assert [(r.status, r.status_reason) for r in rows(rig.db, SetupRow)] == [
        ("EXPIRED", "not executed: no entry window ran after it was found")]
    assert Side.BUY.value == "BUY"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(st.tuples(st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3), st.booleans()), min_size=5,
                   max_size=30),
    capital=st.floats(100_000, 2_000_000),
    risk_pct=st.floats(0.5, 3),
    cap_pct=st.floats(0.5, 4),
    restart_at=st.integers(0, 30),
)
async def test_engine_invariants_over_random_days(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[float, float, float, bool]], capital: float,
    risk_pct: float, cap_pct: float, restart_at: int,
) -> None:
    """Whatever the prices and whenever the window runs (with a restart in between): the daily
    risk cap and capital hold, quantities are whole lots, no instrument holds two positions, and
    every position's stop is below its entry and its target above."""
    settings_ = make_settings(capital=capital, risk={"risk_per_trade_pct": risk_pct, "daily_risk_cap_pct": cap_pct})
    rig = make_rig(tmp_path_factory.mktemp("inv"), settings_, [RELIANCE, TCS, LOTTY])
    engine = rig.engine()
    prices = {RELIANCE: 100.0, TCS: 250.0, LOTTY: 40.0}
    for index, (a, b, c, run_window) in enumerate(steps):
        if index == restart_at:
            engine = rig.engine()
        for instrument, move in zip(prices, (a, b, c), strict=True):
            prices[instrument] = max(5.0, instrument.round_price(prices[instrument] * (1 + move / 100)))
        moment = 15 * 3600 + 9 * 60 + 40 + index * 20
        await feed(engine, rig.clock, moment // 3600, moment % 3600 // 60, moment % 60,
                   *((i, p) for i, p in prices.items()))
        if run_window:
            await engine.execute_entry_window()
    await engine.end_of_day()
    positions = rows(rig.db, PositionRow)
    entries = [o for o in rows(rig.db, OrderRow) if o.purpose == "ENTRY"]
    [ledger] = rows(rig.db, RiskLedgerRow)
    lots = {i.instrument_key: i.lot_size for i in (RELIANCE, TCS, LOTTY)}
    event(f"entries: {len(entries)}")
    assert ledger.risk_used <= ledger.daily_risk_cap + 1e-6
    assert len({o.instrument_key for o in entries}) == len(entries)  # one entry per instrument and day
    assert all(o.quantity > 0 and o.quantity % lots[o.instrument_key] == 0 for o in entries)
    setups = {s.client_order_id: s for s in rows(rig.db, SetupRow) if s.client_order_id}
    # capital: what open positions cost (value + buy charges, at fill prices) plus what unfilled entries
    # may still spend (at their LIMIT price) never exceeds the capital plus the day's realised P&L
    buy_cost = ChargeCalculator(settings_.charges).order
    in_use = sum(p.quantity * p.average_price + buy_cost(Side.BUY, p.quantity, p.average_price).total
                 for p in positions if p.status == "OPEN")
    in_use += sum(o.quantity * o.price + buy_cost(Side.BUY, o.quantity, o.price).total
                  for o in entries if o.filled_quantity == 0 and o.status not in ("CANCELLED", "REJECTED"))
    assert in_use <= capital + ledger.realized_pnl + 1e-6
    assert all(o.filled_quantity == 0 or o.average_price <= o.price for o in entries)
    # risk: a settled entry's ACTUAL initial risk (average fill - stop) x filled, a working one's
    # reservation at its LIMIT price; their sum is the ledger's and within the cap
    day_risk = 0.0
    for o in entries:
        stop = setups[o.client_order_id].stop
        day_risk += o.filled_quantity * max(0.0, o.average_price - stop)
        if o.status not in ("FILLED", "CANCELLED", "REJECTED"):
            day_risk += (o.quantity - o.filled_quantity) * (o.price - stop)
    assert day_risk == pytest.approx(ledger.risk_used, abs=1e-6)
    assert day_risk <= ledger.daily_risk_cap + 1e-6
    open_keys = [p.instrument_key for p in positions if p.status == "OPEN"]
    assert len(open_keys) == len(set(open_keys))
    assert all(p.stop < setups[p.entry_client_order_id].entry < p.target for p in positions)
    assert all(p.quantity % lots[p.instrument_key] == 0 for p in positions)


class FlakyPaperBroker(PaperBroker):
    """The paper broker whose GTT listing fails while `down` (network trouble at the broker)."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise TemporaryBrokerError("HTTP 503")

    async def list_exits(self) -> list[Any]:
        self._check()
        return await super().list_exits()

    async def get_exits(self, exit_ids: Collection[str]) -> list[Any]:
        self._check()
        return await super().get_exits(exit_ids)


async def test_broker_trouble_is_counted_and_retried_never_crashing_the_session(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.broker = FlakyPaperBroker(rig.clock, slippage_bps=5.0, instruments=[RELIANCE], db=rig.db)
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    await engine.execute_entry_window()
    await feed(engine, rig.clock, 15, 10, 5, (RELIANCE, 100.0))
    rig.broker.down = True
    await feed(engine, rig.clock, 15, 20, 0, (RELIANCE, 94.9))  # the GTT fires; syncing it fails
    assert engine.broker_errors == 1 and rows(rig.db, TradeRow) == []
    rig.broker.down = False
    await feed(engine, rig.clock, 15, 20, 30, (RELIANCE, 94.8))
    [trade] = rows(rig.db, TradeRow)
    assert (trade.exit_price, trade.exit_reason) == (94.85, "stop (GTT)")


async def test_a_partly_filled_entry_keeps_what_filled_when_the_window_ends(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.broker = PaperBroker(rig.clock, slippage_bps=5.0, partial_fill_ratio=0.25, instruments=[RELIANCE], db=rig.db)
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 24, 0, (RELIANCE, 100.0))
    [decision] = await engine.execute_entry_window()
    assert decision.quantity == 1801
    await feed(engine, rig.clock, 15, 24, 30, (RELIANCE, 100.0))  # 450 filled (1801 * 0.25, whole), window open
    assert rows(rig.db, PositionRow) == []
    await feed(engine, rig.clock, 15, 25, 30, (RELIANCE, 100.0))  # 450 more, then the rest is cancelled
    [order] = [o for o in rows(rig.db, OrderRow) if o.purpose == "ENTRY"]
    assert (order.status, order.filled_quantity, order.average_price) == ("CANCELLED", 900, 100.05)
    [position] = rows(rig.db, PositionRow)
    assert position.quantity == 900
    [gtt] = rows(rig.db, GttRow)
    assert gtt.quantity == 900
    # the actual initial risk of what filled, 900 * (100.05 - 94.95) = 4590.00; the unfilled 901's is released
    assert engine.ledger.risk_used == pytest.approx(4590.0)


async def test_an_earlier_days_realised_loss_reduces_the_funds_of_later_entries(tmp_path: Path) -> None:
    # 10% per trade and a 50% daily cap: only the funds limit the size. Day 1 loses through the stop;
    # on day 2, cost + buy charges must fit in the capital less that loss.
    settings = make_settings(risk={"risk_per_trade_pct": 10.0, "daily_risk_cap_pct": 50.0})
    rig = make_rig(tmp_path, settings)
    first_day = rig.engine()
    await feed(first_day, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    await first_day.execute_entry_window()
    await feed(first_day, rig.clock, 15, 10, 5, (RELIANCE, 100.0))
    await feed(first_day, rig.clock, 15, 20, 0, (RELIANCE, 94.9))
    await feed(first_day, rig.clock, 15, 20, 5, (RELIANCE, 94.8))
    day_one = await first_day.end_of_day()
    assert day_one.exits == 1 and day_one.net_pnl < -50_000

    next_day = date(2024, 6, 5)
    rig.clock.set(at(next_day, 15, 10))
    engine = TradingEngine(settings, rig.clock, [RELIANCE], {RELIANCE.symbol: seeded_indicators(RELIANCE, next_day)},
                           rig.strategy, OrderManager(rig.broker, rig.db, rig.clock, trading_day=next_day), rig.db,
                           next_day, rig.broker, session=SessionHours(at(next_day, 9, 15), at(next_day, 15, 30)))
    await engine.on_ticks([tick(RELIANCE, 100.0, rig.clock.now())])
    [decision] = await engine.execute_entry_window()
    assert decision.approved
    assert decision.cost + decision.charges <= settings.capital + day_one.net_pnl


async def test_a_gtt_settled_before_a_restart_closes_its_position_at_the_legs_fill(tmp_path: Path) -> None:
    # Exit ids that are not short and alphanumeric are journaled under a hashed id, never a truncated one.
    from engine.execution.ids import triggered_order_id
    from engine.portfolio.times import to_db

    rig = make_rig(tmp_path)
    exit_id = "gtt-2024-06-04-0000001"
    engine = rig.engine()
    position = engine.positions.open_position(RELIANCE, 100, 100.0, 95.0, 110.0, at(DAY, 15, 10), "ATENTRY")
    engine.positions.set_exit(position, exit_id)
    now = to_db(at(DAY, 15, 20))
    with session_scope(rig.db) as session:
        session.add(GttRow(exit_id=exit_id, broker="paper", tag="ATEXIT", instrument_key=RELIANCE.instrument_key,
                           position_id=position.id, quantity=100, stop_trigger=95.0, stop_limit=94.5,
                           target_trigger=110.0, target_limit=109.5, status="TRIGGERED_STOP", created_at=now,
                           updated_at=now))
        session.add(OrderRow(client_order_id=triggered_order_id(exit_id), trading_day=DAY, broker="paper",
                             instrument_key=RELIANCE.instrument_key, symbol="RELIANCE", side="SELL", quantity=100,
                             order_type="LIMIT", price=94.5, purpose="EXIT", status="FILLED", filled_quantity=100,
                             average_price=94.85, created_at=now, updated_at=now))
    restarted = rig.engine()
    await restarted.resume()
    [trade] = rows(rig.db, TradeRow)
    assert (trade.exit_price, trade.exit_reason) == (94.85, "stop (GTT)")
    assert restarted.positions.open == {}


async def test_a_loss_settled_by_reconciliation_trips_the_kill_switch_before_the_next_entry(tmp_path: Path) -> None:
    settings = make_settings(risk={"max_daily_loss_pct": 0.5})
    rig = make_rig(tmp_path, settings, [RELIANCE, TCS])
    engine = rig.engine()
    await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
    await engine.execute_entry_window()
    await feed(engine, rig.clock, 15, 10, 5, (RELIANCE, 100.0), (TCS, 100.0))  # filled and protected; TCS a candidate
    rig.clock.set(at(DAY, 15, 11))
    await rig.broker.on_tick(tick(RELIANCE, 94.9, rig.clock.now()))  # the GTT fires while the engine sees no tick
    await engine.reconcile()
    [trade] = rows(rig.db, TradeRow)
    assert trade.net_pnl < -5_000  # beyond 0.5% of the capital
    assert await engine.execute_entry_window() == []
    # 1801 bought at 100.05, the stop leg sold at 94.85: net -9474.26 (see the stop-hit test)
    assert engine.kill_switch and engine.kill_reason.startswith("day P&L -9474.26")
    assert [o.symbol for o in rows(rig.db, OrderRow) if o.purpose == "ENTRY"] == ["RELIANCE"]
    # the candidate the kill switch cleared ends the day SKIPPED with the kill reason
    await engine.end_of_day()
    skipped = {r.symbol: (r.status, r.status_reason) for r in rows(rig.db, SetupRow)}["TCS"]
    assert skipped == ("SKIPPED", f"kill switch on: {engine.kill_reason}")


class ExitsAbove101(AlwaysLong):
    def on_exit(self, position: Any, tick: Tick, snapshot: Any, **kwargs: Any) -> str | None:
        return "above 101" if tick.ltp > 101.0 else None


async def test_a_strategys_exit_hook_sells_the_position_and_the_default_hook_never_does(tmp_path: Path) -> None:
    for strategy, expected in ((ExitsAbove101(), ["strategy: above 101"]), (AlwaysLong(), [])):
        rig = make_rig(tmp_path / strategy.__class__.__name__, strategy=strategy)
        engine = rig.engine()
        assert engine.strategy.has_exit_hook is (expected != [])
        await feed(engine, rig.clock, 15, 10, 0, (RELIANCE, 100.0))
        await engine.execute_entry_window()
        await feed(engine, rig.clock, 15, 10, 5, (RELIANCE, 100.0))
        await feed(engine, rig.clock, 15, 12, 0, (RELIANCE, 101.5))  # the hook asks for an exit: a market sell
        await feed(engine, rig.clock, 15, 12, 5, (RELIANCE, 101.5))
        assert [t.exit_reason for t in rows(rig.db, TradeRow)] == expected
