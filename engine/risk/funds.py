"""The capital the risk engine may use: the smaller of what the settings allow (`capital`, or what of
it is still free) and the cash the broker reports (`Broker.funds()`). Pure: no I/O, no clock.

The broker is read at pre-open (`engine.session.day.read_broker_funds`) and again when the entry
window opens (the trading engine's funds request); an answer of None (the broker cannot tell, or the
read failed) leaves the settings' figure alone, it never blocks trading by itself."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UsableCapital:
    """`amount` may be spent; `limited_by` says which figure set it ("settings" or "broker")."""

    amount: float
    settings_capital: float
    broker_cash: float | None
    limited_by: str

    @property
    def reason(self) -> str:
        """One line for the log and the pre-open artifact."""
        if self.broker_cash is None:
            return f"usable capital {self.amount:.2f}: from the settings (the broker reported no cash)"
        return (f"usable capital {self.amount:.2f}: the smaller of the settings' {self.settings_capital:.2f} "
                f"and the broker's cash {self.broker_cash:.2f} ({self.limited_by})")


def usable_capital(settings_capital: float, broker_cash: float | None) -> UsableCapital:
    """The smaller of `settings_capital` and `broker_cash` (None: unknown, the settings alone). A
    negative cash balance (a debit at the broker) leaves nothing to spend. Non-finite or negative
    settings capital is a programming error and raises ValueError naming the value."""
    if not math.isfinite(settings_capital) or settings_capital < 0:
        raise ValueError(f"settings capital must be a finite amount >= 0, got {settings_capital!r}")
    if broker_cash is None or not math.isfinite(broker_cash):
        return UsableCapital(settings_capital, settings_capital, None, "settings")
    cash = max(0.0, broker_cash)
    if cash < settings_capital:
        return UsableCapital(cash, settings_capital, broker_cash, "broker")
    return UsableCapital(settings_capital, settings_capital, broker_cash, "settings")
