"""Position sizing: quantity = capital × risk_per_trade_pct % ÷ (entry − stop), rounded DOWN to
whole lots, so the size adapts to volatility through the stop. `entry` is the most the entry
order can pay (the engine passes its LIMIT price), so the risk holds whatever the fill. Optional
volatility cap: when the daily ATR is more than `volatility_cap_atr_pct` % of that price, the
quantity is scaled by cap ÷ ATR%."""

from __future__ import annotations

from dataclasses import dataclass

from engine.models import Instrument
from engine.settings import RiskSettings


@dataclass(frozen=True, slots=True)
class SizeDecision:
    quantity: int
    risk: float  # quantity × (entry − stop)
    reason: str


def size_position(
    instrument: Instrument,
    entry: float,
    stop: float,
    capital: float,
    risk: RiskSettings,
    atr: float | None = None,
) -> SizeDecision:
    per_share = entry - stop
    if per_share <= 0:
        return SizeDecision(0, 0.0, f"stop {stop:.2f} is not below entry {entry:.2f}")
    budget = capital * risk.risk_per_trade_pct / 100
    raw = budget / per_share
    reason = f"risk {budget:.2f} ({risk.risk_per_trade_pct:g}% of {capital:.0f}) / {per_share:.2f} per share"
    cap = risk.volatility_cap_atr_pct
    if cap is not None and atr is not None and entry > 0:
        atr_pct = 100 * atr / entry
        if atr_pct > cap:
            raw *= cap / atr_pct
            reason += f"; scaled by volatility cap {cap:g}% / ATR {atr_pct:.2f}%"
    quantity = instrument.whole_lots(raw)
    if quantity == 0:
        return SizeDecision(0, 0.0, reason + f" = {raw:.2f} shares, below one lot of {instrument.lot_size}")
    return SizeDecision(quantity, round(quantity * per_share, 2), reason + f" = {quantity} (whole lots)")
