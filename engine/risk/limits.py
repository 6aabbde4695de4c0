"""Choosing which candidates to enter, within every limit. Pure: the engine passes the state
(budget, funds, what is held) and gets one explained decision per candidate.

In order of score (highest first; ties by symbol), a candidate is rejected when: the kill switch
is on; the instrument already has an open position or pending entry (or an earlier candidate
took it); a validator rule failed; max open positions is reached; its size is below one lot. Its
quantity is then cut (whole lots) to fit the rest of the daily risk budget and the available
funds; rejected if nothing is left.

Everything is priced at the WORST-CASE fill, the entry order's LIMIT price (entry +
`limit_offset_pct` %, snapped down to the tick grid by `engine.data.ticks.round_for`: the most the
order can pay, never above the intended worst price): size = capital × risk % ÷
(limit − stop), the risk reserved in the ledger = quantity × (limit − stop), cost and charges at
the limit. Whatever the order fills at, its actual initial risk (fill − stop) × filled and its cost
stay within what was reserved, so the daily risk cap and the funds hold."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.data.ticks import PriceRole, round_for
from engine.models import Instrument, Setup, Side
from engine.portfolio.charges import ChargeCalculator
from engine.risk.sizing import size_position
from engine.settings import RiskSettings
from engine.strategy.validator import failed_rules

_EPSILON = 1e-6


@dataclass(slots=True)
class Candidate:
    setup: Setup
    instrument: Instrument
    atr: float | None = None  # daily ATR, for the volatility cap


@dataclass(slots=True)
class RiskBudget:
    capital: float
    daily_risk_cap: float
    risk_used: float
    funds_available: float
    open_positions: int
    held: frozenset[str] = field(default_factory=frozenset)  # instrument keys: open position or pending entry
    kill_switch: bool = False
    kill_reason: str = ""

    @property
    def risk_left(self) -> float:
        return max(0.0, self.daily_risk_cap - self.risk_used)


@dataclass(slots=True)
class EntryDecision:
    setup: Setup
    instrument: Instrument
    approved: bool
    reason: str
    quantity: int = 0
    risk: float = 0.0  # quantity × (limit_price − stop): the worst-case initial risk reserved in the ledger
    limit_price: float = 0.0  # the entry order's LIMIT price (the most it can pay)
    cost: float = 0.0  # quantity × limit_price
    charges: float = 0.0  # buy-side charges at limit_price

    @property
    def symbol(self) -> str:
        return self.setup.symbol


def _fit_lots(instrument: Instrument, quantity: int, per_unit: float, limit: float) -> int:
    """Largest whole-lot quantity <= `quantity` with quantity × per_unit <= limit."""
    if per_unit <= 0:
        return quantity
    fitted = min(quantity, instrument.whole_lots(limit / per_unit))
    while fitted > 0 and fitted * per_unit > limit + _EPSILON:
        fitted -= instrument.lot_size
    return fitted


def plan_entries(
    candidates: Iterable[Candidate],
    budget: RiskBudget,
    risk: RiskSettings,
    charges: ChargeCalculator,
    *,
    limit_offset_pct: float = 0.0,
) -> list[EntryDecision]:
    ordered = sorted(candidates, key=lambda c: (-c.setup.score, c.setup.symbol))
    held = set(budget.held)
    risk_left = budget.risk_left
    funds_left = max(0.0, budget.funds_available)
    slots_left = risk.max_open_positions - budget.open_positions
    decisions: list[EntryDecision] = []

    def reject(candidate: Candidate, reason: str) -> None:
        decisions.append(EntryDecision(candidate.setup, candidate.instrument, False, reason))

    for candidate in ordered:
        setup, instrument = candidate.setup, candidate.instrument
        if budget.kill_switch:
            reject(candidate, f"kill switch on: {budget.kill_reason}")
            continue
        if setup.instrument_key in held:
            reject(candidate, "instrument already has an open position or pending entry")
            continue
        failed = failed_rules(setup)
        if failed:
            reject(candidate, "failed rules: " + ", ".join(rule.name for rule in failed))
            continue
        if slots_left <= 0:
            reject(candidate, f"max open positions ({risk.max_open_positions}) reached")
            continue
        limit = round_for(instrument, setup.entry * (1 + limit_offset_pct / 100), PriceRole.ENTRY_LIMIT)
        sized = size_position(instrument, limit, setup.stop, budget.capital, risk, candidate.atr)
        if sized.quantity == 0:
            reject(candidate, sized.reason)
            continue
        per_share = limit - setup.stop
        notes = [f"at limit {limit:.2f}: {sized.reason}"]
        quantity = _fit_lots(instrument, sized.quantity, per_share, risk_left)
        if quantity < sized.quantity:
            notes.append(f"cut to {quantity} by daily risk budget left {risk_left:.2f}")
        if quantity == 0:
            lot_risk = per_share * instrument.lot_size
            reject(candidate, f"daily risk cap: {risk_left:.2f} left, one lot risks {lot_risk:.2f}")
            continue
        # Charges are almost linear in turnover: fit on price plus the charge rate, then shed lots
        # while cost + charges still exceed the funds.
        charge_rate = charges.order(Side.BUY, quantity, limit).total / (quantity * limit)
        fitted = _fit_lots(instrument, quantity, limit * (1 + charge_rate), funds_left)
        buy_charges = charges.order(Side.BUY, fitted, limit).total
        while fitted > 0 and fitted * limit + buy_charges > funds_left:
            fitted -= instrument.lot_size
            buy_charges = charges.order(Side.BUY, fitted, limit).total
        if fitted < quantity:
            notes.append(f"cut to {fitted} by funds available {funds_left:.2f}")
        if fitted == 0:
            reject(candidate, f"capital: funds available {funds_left:.2f} do not cover one lot at {limit:.2f}")
            continue
        cost = fitted * limit
        decision_risk = fitted * per_share
        decisions.append(
            EntryDecision(setup, instrument, True, "; ".join(notes), fitted, decision_risk, limit, cost, buy_charges)
        )
        held.add(setup.instrument_key)
        risk_left -= decision_risk
        funds_left -= cost + buy_charges
        slots_left -= 1
    return decisions
