from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import SteppedClock
from engine.models import Instrument, RuleResult, Side
from engine.portfolio.charges import ChargeCalculator
from engine.risk.ledger import RiskLedger
from engine.risk.limits import Candidate, RiskBudget, plan_entries
from engine.settings import ChargesSettings, RiskSettings, load_settings
from engine.storage import init_db
from tests.engine.strategy.support import RELIANCE, TCS, at, make_setup

RISK = RiskSettings()
CHARGES = ChargeCalculator(ChargesSettings())


def budget(**overrides: object) -> RiskBudget:
    values: dict[str, object] = dict(capital=1_000_000.0, daily_risk_cap=30_000.0, risk_used=0.0,
                                     funds_available=1_000_000.0, open_positions=0)
    values.update(overrides)
    return RiskBudget(**values)  # type: ignore[arg-type]


def test_highest_score_wins_when_the_daily_budget_runs_short() -> None:
    # 25,000 of 30,000 used: 5,000 left. TCS (score 5) wants 10,000 / 5 = 2000 shares, cut to 1000;
    # RELIANCE (score 3) finds nothing left.
    low = Candidate(make_setup(RELIANCE, entry=100.0, stop=95.0, score=3.0), RELIANCE)
    high = Candidate(make_setup(TCS, entry=100.0, stop=95.0, score=5.0), TCS)
    decisions = plan_entries([low, high], budget(risk_used=25_000.0), RISK, CHARGES)
    assert [(d.symbol, d.approved, d.quantity, d.risk) for d in decisions] == [
        ("TCS", True, 1000, 5000.0),
        ("RELIANCE", False, 0, 0.0),
    ]
    assert "cut to 1000 by daily risk budget left 5000.00" in decisions[0].reason
    assert decisions[1].reason == "daily risk cap: 0.00 left, one lot risks 5.00"


def test_capital_constraint_counts_the_buy_charges() -> None:
    # 2000 shares at 100 = 2,00,000 + charges 237.25 (stt 200, exch 5.94, sebi 0.2, stamp 30, gst 1.1052) > 2,00,000;
    # 1997 shares: 1,99,700 + 236.89 fits
    candidate = Candidate(make_setup(RELIANCE, entry=100.0, stop=95.0), RELIANCE)
    [decision] = plan_entries([candidate], budget(funds_available=200_000.0), RISK, CHARGES)
    assert decision.approved and decision.quantity == 1997
    assert decision.cost + decision.charges <= 200_000.0
    assert decision.cost == 199_700.0


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
)
def test_limits_are_never_exceeded(
    raw: list[tuple[str, float, float, int, float]], capital: float, cap_pct: float, used_fraction: float,
    funds_fraction: float, open_positions: int, held: set[str], pct: float, max_open: int,
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
    decisions = plan_entries(candidates, state, risk, CHARGES)
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
        assert abs(d.risk - d.quantity * (d.setup.entry - d.setup.stop)) < 1e-6
        assert d.cost == d.quantity * d.setup.entry
        assert abs(d.charges - CHARGES.order(Side.BUY, d.quantity, d.setup.entry).total) < 1e-9


def test_ledger_persists_the_days_budget_across_restarts() -> None:
    db = init_db("sqlite://")
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
    assert again.row.entries == 1
    other_day = RiskLedger(db, clock, date(2024, 6, 5), settings)
    assert other_day.risk_used == 0.0 and not other_day.kill_switch
