"""What a trading day ends with: `DaySummary` (setups, entries, exits, P&L, risk, kill switch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from engine.models import Trade
from engine.risk.ledger import RiskLedger


@dataclass(slots=True)
class DaySummary:
    trading_day: date
    setups: int
    entries: int
    exits: int
    open_positions: int
    gross_pnl: float
    net_pnl: float
    capital: float
    daily_risk_cap: float
    risk_used: float
    kill_switch: bool
    kill_reason: str
    strategy_errors: int
    trades: list[Trade] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["trading_day"] = self.trading_day.isoformat()
        data["trades"] = [
            {**asdict(t), "side": t.side.value, "entry_time": t.entry_time.isoformat(),
             "exit_time": t.exit_time.isoformat()}
            for t in self.trades
        ]
        return data


def summarize_day(trading_day: date, *, setups: int, ledger: RiskLedger, trades: list[Trade], open_positions: int,
                  strategy_errors: int) -> DaySummary:
    return DaySummary(
        trading_day=trading_day, setups=setups, entries=ledger.row.entries, exits=len(trades),
        open_positions=open_positions, gross_pnl=round(sum(t.gross_pnl for t in trades), 2),
        net_pnl=round(sum(t.net_pnl for t in trades), 2), capital=ledger.capital, daily_risk_cap=ledger.daily_risk_cap,
        risk_used=round(ledger.risk_used, 2), kill_switch=ledger.kill_switch, kill_reason=ledger.kill_reason,
        strategy_errors=strategy_errors, trades=trades,
    )
