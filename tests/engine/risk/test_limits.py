from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import SteppedClock
from engine.models import Instrument, RuleResult, Side
from engine.portfolio.charges import ChargeCalculator
from engine.risk.ledger import RiskLedger, entry_initial_risk
from engine.risk.limits import Candidate, RiskBudget, plan_entries
from engine.settings import ChargesSettings, RiskSettings, load_settings
from engine.storage import init_db
from engine.storage.memory import Database, MemoryDatabase
from tests.engine.strategy.support import RELIANCE, TCS, at, make_setup

RISK = RiskSettings()
CHARGES = ChargeCalculator(ChargesSettings())


def budget(**overrides: object) -> RiskBudget:
    values: dict[str, object] = dict(capital=1_000_000.0, daily_risk_cap=30_000.0, risk_used=0.0,
                                     funds_available=1_000_000.0, open_positions=0)
    values.update(overrides)
    return RiskBudget(**values)  # type: ignore[arg-type]


def test_highest_score_wins_when_the_daily_budget_runs_short() -> None:
    # Sized and reserved at the worst-case fill, the LIMIT price 100 x 1.005 = 100.50; per share
    # 100.50 - 95 = 5.50. 25,000 of 30,000 used: 5,000 left. TCS (score 5) wants 10,000 / 5.50 =
    # 1818.18 -> 1818 shares, cut to 5,000 / 5.50 = 909.09 -> 909 (risk 909 x 5.50 = 4999.50);
    # RELIANCE (score 3) finds 0.50 left, less than one share's 5.50.
    low = Candidate(make_setup(RELIANCE, entry=100.0, stop=95.0, score=3.0), RELIANCE)
    high = Candidate(make_setup(TCS, entry=100.0, stop=95.0, score=5.0), TCS)
    decisions = plan_entries([low, high], budget(risk_used=25_000.0), RISK, CHARGES, limit_offset_pct=0.5)
    assert [(d.symbol, d.approved, d.quantity, d.limit_price) for d in decisions] == [
        ("TCS", True, 909, 100.5),
        ("RELIANCE", False, 0, 0.0),
    ]
    assert [d.risk for d in decisions] == pytest.approx([4999.5, 0.0])
    assert decisions[0].reason.startswith("at limit 100.50: risk 10000.00 (1% of 1000000) / 5.50 per share = 1818")
    assert "cut to 909 by daily risk budget left 5000.00" in decisions[0].reason
    assert decisions[1].reason == "daily risk cap: 0.50 left, one lot risks 5.50"


def test_the_size_is_the_same_risk_at_the_worst_fill_whatever_the_offset() -> None:
    # entry 100, stop 95: no offset -> 10,000 / 5 = 2000; 0.5% -> limit 100.50, 10,000 / 5.50 = 1818;
    # 1% -> limit 101.00, 10,000 / 6 = 1666.67 -> 1666 (risk 9996.00)
    sizes = [plan_entries([Candidate(make_setup(RELIANCE), RELIANCE)], budget(), RISK, CHARGES,
                          limit_offset_pct=offset)[0] for offset in (0.0, 0.5, 1.0)]
    assert [(d.quantity, d.limit_price) for d in sizes] == [(2000, 100.0), (1818, 100.5), (1666, 101.0)]
    assert [d.risk for d in sizes] == pytest.approx([10_000.0, 9999.0, 9996.0])


def test_capital_constraint_counts_the_buy_charges_at_the_limit_price() -> None:
    # limit 100.50; the risk allows 1818 shares = 1,82,709 > 1,80,000 of funds. Buy charges are
    # 0.1186226 % of turnover (STT 0.1 % + exchange 0.00297 % + SEBI 0.0001 % + stamp 0.015 %
    # + GST 18 % of (exchange + SEBI)): 1789 shares = 1,79,794.50 + 213.28 = 1,80,007.78 > 1,80,000;
    # 1788 shares = 1,79,694.00 + 213.16 = 1,79,907.16 fits.
    candidate = Candidate(make_setup(RELIANCE, entry=100.0, stop=95.0), RELIANCE)
    [decision] = plan_entries([candidate], budget(funds_available=180_000.0), RISK, CHARGES, limit_offset_pct=0.5)
    assert decision.approved and decision.quantity == 1788
    assert decision.cost == 179_694.0 and round(decision.charges, 2) == 213.16
    assert decision.cost + decision.charges <= 180_000.0
    assert "cut to 1788 by funds available 180000.00" in decision.reason


def test_rejections_explain_themselves() -> None:
    failing = make_setup(TCS)
    failing.rules = [RuleResult("1d close > sma_200", False, "close 90 > sma_200 95")]
    decisions = plan_entries(
        [Candidate(make_setup(RELIANCE), RELIANCE), Candidate(failing, TCS)],
        budget(held=frozenset({RELIANCE.instrument_key})), RISK, CHARGES,
    )
    assert {d.symbol: d.reason for d in decisions} == {
        "RELIANCE": "instrument already has an open position or pending entry",
        "TCS": "failed rules: 1d close > sma_200",
    }
    killed = plan_entries([Candidate(make_setup(TCS), TCS)], budget(kill_switch=True, kill_reason="loss"), RISK,
                          CHARGES)
    assert killed[0].reason == "kill switch on: loss"
    full = plan_entries([Candidate(make_setup(TCS), TCS)], budget(open_positions=5), RISK, CHARGES)
    assert full[0].reason == "max open positions (5) reached"


candidate_strategy = st.builds(
    lambda sym, entry, stop_pct, lot, score: (sym, entry, stop_pct, lot, score),
    st.sampled_from([f"S{i}" for i in range(8)]),
    st.floats(5, 20_000),
    st.floats(0.2, 25),
    st.sampled_from([1, 1, 5, 25, 250]),
    st.floats(-10, 100),
)


@settings(max_examples=150, deadline=None)
@given(
    raw=st.lists(candidate_strategy, min_size=0, max_size=12),
    capital=st.floats(50_000, 5e7),
    cap_pct=st.floats(0.5, 10),
    used_fraction=st.floats(0, 1.2),
    funds_fraction=st.floats(0, 1.2),
    open_positions=st.integers(0, 6),
    held=st.sets(st.sampled_from([f"S{i}" for i in range(8)]), max_size=3),
    pct=st.floats(0.1, 5),
    max_open=st.integers(1, 8),
    offset=st.sampled_from([0.0, 0.5]) | st.floats(0, 10),
)
def test_limits_are_never_exceeded(
    raw: list[tuple[str, float, float, int, float]], capital: float, cap_pct: float, used_fraction: float,
    funds_fraction: float, open_positions: int, held: set[str], pct: float, max_open: int, offset: float,
) -> None:
    candidates = []
    for symbol, entry, stop_pct, lot, score in raw:
        instrument = Instrument(symbol, symbol, symbol, tick_size=0.05, lot_size=lot)
        entry = instrument.round_price(entry)
        stop = instrument.round_price(entry * (1 - stop_pct / 100), "down")
        if not 0 < stop < entry:
            continue
        candidates.append(Candidate(make_setup(instrument, entry=entry, stop=stop, score=score), instrument))
    cap = capital * cap_pct / 100
    state = budget(capital=capital, daily_risk_cap=cap, risk_used=cap * used_fraction,
                   funds_available=capital * funds_fraction, open_positions=open_positions, held=frozenset(held))
    risk = RiskSettings(risk_per_trade_pct=pct, max_open_positions=max_open)
    decisions = plan_entries(candidates, state, risk, CHARGES, limit_offset_pct=offset)
    approved = [d for d in decisions if d.approved]
    assert len(decisions) == len(candidates)
    assert sum(d.risk for d in approved) <= state.risk_left + 1e-6
    assert state.risk_used + sum(d.risk for d in approved) <= max(cap, state.risk_used) + 1e-6
    assert sum(d.cost + d.charges for d in approved) <= max(0.0, state.funds_available) + 1e-6
    assert all(d.quantity > 0 and d.quantity % d.instrument.lot_size == 0 for d in approved)
    keys = [d.setup.instrument_key for d in approved]
    assert len(keys) == len(set(keys)) and not set(keys) & held
    assert len(approved) <= max(0, max_open - open_positions)
    for d in approved:
        assert d.limit_price == d.instrument.round_price(d.setup.entry * (1 + offset / 100), "down") >= d.setup.entry
        assert abs(d.risk - d.quantity * (d.limit_price - d.setup.stop)) < 1e-6  # reserved at the worst fill
        assert d.cost == d.quantity * d.limit_price
        assert abs(d.charges - CHARGES.order(Side.BUY, d.quantity, d.limit_price).total) < 1e-9


def _candidates(raw: list[tuple[str, float, float, int, float]], round_index: int) -> list[Candidate]:
    """Fresh instruments per round (one entry per instrument and day)."""
    candidates = []
    for symbol, entry, stop_pct, lot, score in raw:
        instrument = Instrument(f"{symbol}-{round_index}", symbol, symbol, tick_size=0.05, lot_size=lot)
        entry = instrument.round_price(entry)
        stop = instrument.round_price(entry * (1 - stop_pct / 100), "down")
        if 0 < stop < entry:
            candidates.append(Candidate(make_setup(instrument, entry=entry, stop=stop, score=score), instrument))
    return candidates


@settings(max_examples=150, deadline=None)
@given(
    rounds=st.lists(st.lists(candidate_strategy, min_size=1, max_size=6), min_size=1, max_size=4),
    fills=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=24, max_size=24),
    capital=st.floats(50_000, 5e7),
    cap_pct=st.floats(0.5, 10),
    funds_fraction=st.floats(0, 1.2),
    pct=st.floats(0.1, 5),
    offset=st.sampled_from([0.5, 10.0]) | st.floats(0, 10),
)
def test_whatever_the_fills_up_to_the_limit_the_cap_and_the_funds_hold(
    rounds: list[list[tuple[str, float, float, int, float]]], fills: list[tuple[float, float]], capital: float,
    cap_pct: float, funds_fraction: float, pct: float, offset: float,
) -> None:
    """A day of several entry windows, as the engine runs them: each approved entry fills some
    whole lots anywhere up to its LIMIT price (even below its stop) and the rest is cancelled; the
    ledger's risk is then recomputed from the actual fills (`entry_initial_risk`, settled) and the
    funds from the actual cost, and the next window plans with what was freed. The day's actual
    initial risk stays within the cap and what was spent (cost + buy charges) within the funds."""
    cap = capital * cap_pct / 100
    funds = capital * funds_fraction
    risk = RiskSettings(risk_per_trade_pct=pct, max_open_positions=100)
    actual_risks: list[float] = []
    spent = 0.0
    draws = iter(fills)
    for index, raw in enumerate(rounds):
        state = budget(capital=capital, daily_risk_cap=cap, risk_used=sum(actual_risks), funds_available=funds - spent)
        for decision in plan_entries(_candidates(raw, index), state, risk, CHARGES, limit_offset_pct=offset):
            if not decision.approved:
                continue
            price_draw, quantity_draw = next(draws)
            lot = decision.instrument.lot_size
            filled = lot * round(quantity_draw * decision.quantity / lot)
            lowest = max(0.05, decision.setup.stop * 0.9)
            fill = decision.instrument.round_price(lowest + price_draw * (decision.limit_price - lowest), "down")
            assert fill <= decision.limit_price
            actual = entry_initial_risk(stop=decision.setup.stop, quantity=decision.quantity,
                                        limit_price=decision.limit_price, filled_quantity=filled,
                                        average_price=fill, settled=True)
            assert actual <= decision.risk + 1e-6  # the actual risk never exceeds the reservation
            actual_risks.append(actual)
            spent += filled * fill + CHARGES.order(Side.BUY, filled, fill).total
    assert sum(actual_risks) <= cap + 1e-6
    assert spent <= max(0.0, funds) + 1e-6


def test_the_initial_risk_of_an_entry_order() -> None:
    # 1801 ordered at LIMIT 100.50, stop 94.95: while working it holds 1801 x 5.55 = 9995.55; 900
    # filled at 100.05 while the rest works: 900 x 5.10 + 901 x 5.55 = 4590 + 5000.55 = 9590.55;
    # settled (rest cancelled): 900 x 5.10 = 4590.00; nothing filled and settled: 0.
    def risk(filled: int, settled: bool) -> float:
        return entry_initial_risk(stop=94.95, quantity=1801, limit_price=100.5, filled_quantity=filled,
                                  average_price=100.05 if filled else 0.0, settled=settled)

    assert [risk(0, False), risk(900, False), risk(900, True), risk(0, True)] == pytest.approx(
        [9995.55, 9590.55, 4590.0, 0.0])
    assert entry_initial_risk(stop=95.0, quantity=10, limit_price=100.5, filled_quantity=10, average_price=94.0,
                              settled=True) == 0.0  # filled below the stop: no risk counted, never negative


@pytest.mark.parametrize("kind", ["sql", "memory"])
def test_ledger_persists_the_days_budget_across_restarts(kind: str) -> None:
    db: Database = init_db("sqlite://") if kind == "sql" else MemoryDatabase()
    settings = load_settings()
    clock = SteppedClock(at(date(2024, 6, 4), 15, 10))
    ledger = RiskLedger(db, clock, date(2024, 6, 4), settings)
    assert (ledger.capital, ledger.daily_risk_cap, ledger.risk_used) == (1_000_000.0, 30_000.0, 0.0)
    ledger.add_entry(9_999.0)
    ledger.set_totals(risk_used=9_999.0, realized_pnl=-1234.5)
    ledger.trip("test")
    again = RiskLedger(db, clock, date(2024, 6, 4), settings)
    assert (again.risk_used, again.realized_pnl, again.kill_switch, again.kill_reason) == (9999.0, -1234.5, True,
                                                                                           "test")
    assert again.entries == 1 and again.row.updated_at == clock.now()
    other_day = RiskLedger(db, clock, date(2024, 6, 5), settings)
    assert other_day.risk_used == 0.0 and not other_day.kill_switch
