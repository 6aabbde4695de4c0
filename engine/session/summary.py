"""What happened over a run of trading days, from the database: setups, entries, GTT exits placed
and hit, positions carried, P&L. The demo prints it; tests assert on it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, func, select

from engine.models import ExitStatus, OrderPurpose, OrderStatus, PositionStatus, SetupStatus
from engine.secrets import redact_payload
from engine.storage import session_scope
from engine.storage.tables import GttRow, OrderRow, PositionRow, SessionStateRow, SetupRow, TradeRow

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


def _count(session: Any, statement: Any) -> int:
    return int(session.exec(statement).one())


def summarize(db: Engine, days: Iterable[date]) -> RunSummary:
    summary = RunSummary()
    with session_scope(db) as session:
        for day in days:
            stages = {
                row.stage: row.status
                for row in session.exec(select(SessionStateRow).where(SessionStateRow.trading_day == day)).all()
            }
            trades = session.exec(select(TradeRow).where(TradeRow.trading_day == day)).all()
            setups = select(func.count()).select_from(SetupRow).where(SetupRow.trading_day == day)
            entries = select(func.count()).select_from(OrderRow).where(
                OrderRow.trading_day == day, OrderRow.purpose == OrderPurpose.ENTRY.value
            )
            summary.days.append(
                DayLine(
                    day=day.isoformat(),
                    stages=stages,
                    setups=_count(session, setups),
                    setups_executed=_count(session, setups.where(SetupRow.status == SetupStatus.EXECUTED.value)),
                    entry_orders=_count(session, entries),
                    entries_filled=_count(session, entries.where(OrderRow.status == OrderStatus.FILLED.value)),
                    exits_hit=len(trades),
                    net_pnl=round(sum(t.net_pnl for t in trades), 2),
                )
            )
            summary.trades += [
                {"day": day.isoformat(), "symbol": t.symbol, "quantity": t.quantity, "entry_price": t.entry_price,
                 "exit_price": t.exit_price, "net_pnl": round(t.net_pnl, 2), "exit_reason": t.exit_reason}
                for t in trades
            ]
        gtts = session.exec(select(GttRow)).all()
        summary.gtts_placed = len(gtts)
        summary.gtts_active = sum(1 for g in gtts if g.status == ExitStatus.ACTIVE)
        summary.gtts_triggered = sum(1 for g in gtts if g.status in TRIGGERED)
        summary.open_positions = [
            {"symbol": p.symbol, "quantity": p.quantity, "average_price": p.average_price, "stop": p.stop,
             "target": p.target, "opened_at": p.opened_at.isoformat(), "exit_id": p.exit_id}
            for p in session.exec(select(PositionRow).where(PositionRow.status == PositionStatus.OPEN.value).order_by(
                col(PositionRow.opened_at))).all()
        ]
    return summary
