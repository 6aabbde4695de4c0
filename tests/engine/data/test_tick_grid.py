"""Property: every price the engine sends (the entry LIMIT, the GTT stop and target triggers and their
LIMITs) is on the instrument's tick grid, for every instrument of a refreshed master (the shipped table
refreshed from Upstox's and Kite's masters at random September-2025 closes) and random prices; and each
is rounded the safe way (`engine.data.ticks.ROUNDING`)."""

from __future__ import annotations

import random
from datetime import date
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data.instruments import load_instrument_table, to_instrument
from engine.data.master import kite_instruments, merge_broker_masters, refresh_table, upstox_instruments
from engine.data.ticks import paise, tick_for_price
from engine.execution.exits import exit_request_for
from engine.models import Instrument
from engine.portfolio.charges import ChargeCalculator
from engine.risk.limits import Candidate, RiskBudget, plan_entries
from engine.settings import ChargesSettings, RiskSettings
from tests.conftest import SHIPPED_DATA_DIR
from tests.engine.data.test_master import kite_master_rows, upstox_master_rows
from tests.engine.strategy.support import make_setup

SEPTEMBER = date(2025, 9, 30)
CHARGES = ChargeCalculator(ChargesSettings())


@cache
def refreshed() -> tuple[tuple[Instrument, ...], dict[str, float]]:
    """The refreshed master's instruments and the closes it was refreshed at."""
    broker = merge_broker_masters(upstox_instruments(upstox_master_rows()),
                                  kite_instruments(kite_master_rows()))
    table = load_instrument_table(SHIPPED_DATA_DIR)
    draw = random.Random(20250930)
    closes = {str(s): round(10 ** draw.uniform(1, 4.6), 2) for s in table["symbol"]}  # ₹10 .. ₹40,000
    refresh = refresh_table(table, broker, closes, SEPTEMBER, source="shipped")
    return tuple(to_instrument(row) for _, row in refresh.table.iterrows()), closes


def on_grid(price: float, instrument: Instrument) -> bool:
    cents = price * 100
    return abs(cents - round(cents)) < 1e-6 and round(cents) % paise(instrument.tick_size) == 0


def test_every_refreshed_tick_is_accepted_by_the_band_rule_at_its_close() -> None:
    instruments, closes = refreshed()
    assert len(instruments) == 181
    for instrument in instruments:
        close = closes.get(instrument.symbol)
        if close is not None:  # a renamed symbol's close is under its old name
            assert paise(instrument.tick_size) % paise(tick_for_price(close, SEPTEMBER)) == 0, instrument


@settings(max_examples=400, deadline=None)
@given(index=st.integers(0, 180), entry_draw=st.floats(0.2, 3.0), stop_pct=st.floats(0.3, 25),
       reward=st.floats(0.5, 5), entry_offset=st.floats(0, 10), gtt_offset=st.floats(0, 10))
def test_every_price_sent_is_on_the_tick_grid_and_rounded_safely(
    index: int, entry_draw: float, stop_pct: float, reward: float, entry_offset: float, gtt_offset: float
) -> None:
    instruments, closes = refreshed()
    instrument = instruments[index]
    reference = closes.get(instrument.symbol, 500.0)
    entry = instrument.round_price(reference * entry_draw)  # setups carry on-grid entries (strategy/base.py)
    stop = entry * (1 - stop_pct / 100)
    target = entry + reward * (entry - stop)
    if not 0 < stop < entry:
        return
    budget = RiskBudget(capital=1e9, daily_risk_cap=1e9, risk_used=0.0, funds_available=1e9, open_positions=0)
    [decision] = plan_entries([Candidate(make_setup(instrument, entry=entry, stop=stop, target=target), instrument)],
                              budget, RiskSettings(risk_per_trade_pct=1.0), CHARGES, limit_offset_pct=entry_offset)
    if decision.approved:
        assert on_grid(decision.limit_price, instrument)
        assert entry <= decision.limit_price <= entry * (1 + entry_offset / 100) + 1e-9  # never above the worst
    last_price = entry
    if not stop < last_price < target:
        return
    exit_request = exit_request_for(instrument, 1, stop=stop, target=target, last_price=last_price, tag="t",
                                    limit_offset_pct=gtt_offset)
    for price in (exit_request.stop_trigger, exit_request.stop_limit, exit_request.target_trigger,
                  exit_request.target_limit):
        assert on_grid(price, instrument), (instrument.symbol, instrument.tick_size, price)
    assert stop - 1e-9 <= exit_request.stop_trigger < stop + instrument.tick_size  # not loosened, at most a tick
    assert target - 1e-9 <= exit_request.target_trigger < target + instrument.tick_size
    assert exit_request.stop_limit <= exit_request.stop_trigger
    assert exit_request.target_limit <= exit_request.target_trigger
