"""What happened over a run of trading days, from the database: setups, entries, GTT exits placed
and hit, positions carried, P&L. The demo prints it; tests assert on it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine

from engine.models import ExitStatus, OrderPurpose, OrderStatus, SetupStatus
from engine.portfolio.times import to_db
from engine.secrets import redact_payload
from engine.session.stages import stage_log
from engine.storage.journal import journal_store
from engine.storage.positions import position_store
from engine.storage.setups import setups_store

TRIGGERED = frozenset({ExitStatus.TRIGGERED_STOP, ExitStatus.TRIGGERED_TARGET})


@dataclass
class DayLine:
    day: str
    stages: dict[str, str]
    setups: int = 0
    setups_executed: int = 0
    entry_orders: int = 0
    entries_filled: int = 0
    exits_hit: int = 0
    net_pnl: float = 0.0


@dataclass
class RunSummary:
    days: list[DayLine] = field(default_factory=list)
    gtts_placed: int = 0
    gtts_active: int = 0
    gtts_triggered: int = 0
    open_positions: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)

    @property
    def net_pnl(self) -> float:
        return round(sum(t["net_pnl"] for t in self.trades), 2)

    def as_dict(self) -> dict[str, Any]:
        """Redacted: the summary is printed and may carry texts from the database (stages, exit reasons)."""
        summary: dict[str, Any] = redact_payload({**asdict(self), "net_pnl": self.net_pnl})
        return summary


def summarize(db: Engine, days: Iterable[date]) -> RunSummary:
    summary = RunSummary()
    journal, positions, setups_of = journal_store(db), position_store(db), setups_store(db)
    for day in days:
        trades = [record.trade for record in sorted(positions.trade_records_of(day), key=lambda r: r.id)]  # as logged
        setups = setups_of.of_day(day)
        entries = journal.orders(None, trading_day=day, purpose=OrderPurpose.ENTRY.value)
        summary.days.append(
            DayLine(
                day=day.isoformat(),
                stages={stage: state["status"] for stage, state in stage_log(db, day).items()},
                setups=len(setups),
                setups_executed=sum(1 for setup in setups if setup.status is SetupStatus.EXECUTED),
                entry_orders=len(entries),
                entries_filled=sum(1 for order in entries if order.status is OrderStatus.FILLED),
                exits_hit=len(trades),
                net_pnl=round(sum(t.net_pnl for t in trades), 2),
            )
        )
        summary.trades += [
            {"day": day.isoformat(), "symbol": t.symbol, "quantity": t.quantity, "entry_price": t.entry_price,
             "exit_price": t.exit_price, "net_pnl": round(t.net_pnl, 2), "exit_reason": t.exit_reason}
            for t in trades
        ]
    gtts = journal.all_gtts()
    summary.gtts_placed = len(gtts)
    summary.gtts_active = sum(1 for g in gtts if g.status is ExitStatus.ACTIVE)
    summary.gtts_triggered = sum(1 for g in gtts if g.status in TRIGGERED)
    summary.open_positions = [
        {"symbol": p.symbol, "quantity": p.quantity, "average_price": p.average_price, "stop": p.stop,
         "target": p.target, "opened_at": to_db(p.opened_at).isoformat(), "exit_id": p.exit_id}  # in UTC
        for p in sorted(positions.open_positions(), key=lambda p: p.opened_at)
    ]
    return summary
