from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.models import Instrument, Timeframe
from engine.risk.sizing import size_position
from engine.risk.stops import StopPolicy
from engine.settings import RiskSettings
from tests.engine.strategy.support import LOTTY, RELIANCE, frame, make_setup, snapshot

RISK = RiskSettings()  # 1% per trade, swing stop over 10 bars, reward/risk 2


def test_worked_example_size_is_risk_over_stop_distance_rounded_down() -> None:
    # 1% of 10,00,000 = 10,000 rupees at risk; 10,000 / (102 - 96.95) = 1980.198 -> 1980 shares
    decision = size_position(RELIANCE, 102.0, 96.95, 1_000_000, RISK)
    assert decision.quantity == 1980
    assert decision.risk == 9999.0  # 1980 * 5.05
    # lot size 25: 1980.198 -> 79 lots = 1975 shares
    assert size_position(LOTTY, 102.0, 96.95, 1_000_000, RISK).quantity == 1975


def test_volatility_cap_scales_the_position_down_when_atr_pct_is_high() -> None:
    capped = RISK.model_copy(update={"volatility_cap_atr_pct": 4.0})
    # ATR 6.12 is 6% of 102: 1980.198 * 4/6 = 1320.13 -> 1320
    decision = size_position(RELIANCE, 102.0, 96.95, 1_000_000, capped, atr=6.12)
    assert decision.quantity == 1320
    assert "volatility cap 4% / ATR 6.00%" in decision.reason
    assert size_position(RELIANCE, 102.0, 96.95, 1_000_000, capped, atr=2.04).quantity == 1980  # 2%: no cap


def test_below_one_lot_gives_zero_with_the_reason() -> None:
    decision = size_position(LOTTY, 1000.0, 900.0, 100_000, RISK)  # 1000 / 100 = 10 shares < 25
    assert decision.quantity == 0 and "below one lot of 25" in decision.reason


@given(
    entry=st.floats(10, 10_000),
    stop_pct=st.floats(0.1, 30),
    capital=st.floats(10_000, 1e8),
    lot=st.integers(1, 500),
    pct=st.floats(0.1, 5),
    atr=st.none() | st.floats(0.01, 1000),
)
def test_size_is_whole_lots_and_never_risks_more_than_the_budget(
    entry: float, stop_pct: float, capital: float, lot: int, pct: float, atr: float | None
) -> None:
    instrument = Instrument("K", "S", "I", lot_size=lot)
    stop = entry * (1 - stop_pct / 100)
    risk = RiskSettings(risk_per_trade_pct=pct, volatility_cap_atr_pct=3.0)
    decision = size_position(instrument, entry, stop, capital, risk, atr)
    assert decision.quantity % lot == 0 and decision.quantity >= 0
    assert decision.quantity * (entry - stop) <= capital * pct / 100 + 1e-6


def test_swing_stop_is_one_tick_below_the_lowest_low_and_target_is_reward_risk_times_risk() -> None:
    setup = make_setup(entry=102.0, stop=0.0, target=0.0)
    snap = snapshot(frame(Timeframe.DAY, close=102.0, lowest_low_10=97.0, atr_14=2.0))
    assert StopPolicy(RISK).apply(setup, RELIANCE, snap) is None
    assert (setup.stop, setup.target) == (96.95, 112.1)  # 102 + 2 * 5.05


def test_atr_stop_and_snapping_to_the_tick_grid() -> None:
    policy = StopPolicy(RISK.model_copy(update={"stop_method": "atr", "atr_multiple": 1.5}))
    setup = make_setup(entry=102.0, stop=0.0, target=0.0)
    snap = snapshot(frame(Timeframe.DAY, close=102.0, lowest_low_10=97.0, atr_14=2.03))
    assert policy.apply(setup, RELIANCE, snap) is None
    # 102 - 1.5 * 2.03 = 98.955 -> down to 98.95; target 102 + 2 * 3.05 = 108.10
    assert (setup.stop, setup.target) == (98.95, 108.1)


def test_falls_back_to_the_other_method_and_explains_when_none_works() -> None:
    policy = StopPolicy(RISK)
    setup = make_setup(entry=102.0, stop=0.0, target=0.0)
    assert policy.apply(setup, RELIANCE, snapshot(frame(Timeframe.DAY, close=102.0, atr_14=2.0))) is None
    assert setup.stop == 98.0
    problem = policy.apply(make_setup(entry=102.0, stop=0.0, target=0.0), RELIANCE, snapshot())
    assert problem == "no stop: lowest_low_10 n/a; atr_14 n/a"


def test_a_strategy_stop_above_entry_is_refused() -> None:
    problem = StopPolicy(RISK).apply(make_setup(entry=100.0, stop=101.0, target=0.0), RELIANCE, snapshot())
    assert problem == "stop 101.00 (strategy stop) is not below entry 100.00"


@given(
    entry=st.floats(1, 50_000),
    low_pct=st.floats(0, 50),
    atr=st.floats(0.001, 5_000),
    method=st.sampled_from(["swing", "atr"]),
    tick_size=st.sampled_from([0.01, 0.05, 0.1, 1.0]),
    reward_risk=st.floats(0.5, 5),
)
def test_a_longs_stop_is_below_its_entry_and_its_target_above(
    entry: float, low_pct: float, atr: float, method: str, tick_size: float, reward_risk: float
) -> None:
    instrument = Instrument("K", "S", "I", tick_size=tick_size)
    entry = instrument.round_price(entry)
    if entry <= 0:
        return
    policy = StopPolicy(RiskSettings(stop_method=method, reward_risk=reward_risk))  # type: ignore[arg-type]
    setup = make_setup(instrument, entry=entry, stop=0.0, target=0.0)
    snap = snapshot(frame(Timeframe.DAY, close=entry, lowest_low_10=entry * (1 - low_pct / 100), atr_14=atr))
    if policy.apply(setup, instrument, snap) is None:
        assert 0 < setup.stop < setup.entry < setup.target
        assert instrument.on_tick_grid(setup.stop) and instrument.on_tick_grid(setup.target)
        assert setup.target - setup.entry >= reward_risk * (setup.entry - setup.stop) - 1e-6


def test_a_stop_closer_than_min_stop_atr_is_widened() -> None:
    # swing low 99.50 -> 99.45 is only 0.55 below 100; 0.5 x ATR 2.0 = 1.0 -> stop 99.00, target 102.00
    setup = make_setup(entry=100.0, stop=0.0, target=0.0)
    snap = snapshot(frame(Timeframe.DAY, close=100.0, lowest_low_10=99.5, atr_14=2.0))
    assert StopPolicy(RISK).apply(setup, RELIANCE, snap) is None
    assert (setup.stop, setup.target) == (99.0, 102.0)
    unchanged = make_setup(entry=100.0, stop=0.0, target=0.0)
    assert StopPolicy(RISK.model_copy(update={"min_stop_atr": 0.0})).apply(unchanged, RELIANCE, snap) is None
    assert unchanged.stop == 99.45
